internal import Glibc

/// Reads process environment variables (the CGI request and draven's own settings).
package enum Environment {
    package static func get(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Every `NAME=value` pair of the process environment.
    package static func all() -> [(String, String)] {
        var result: [(String, String)] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                result.append((String(s[..<eq]), String(s[s.index(after: eq)...])))
            }
            p += 1
        }
        return result
    }
}

/// Where draven keeps its state. Functions learn it from `DRAVEN_STATE_DIR` (nginx passes it as
/// a FastCGI param); the CLI from `--state-dir`.
package struct Paths: Sendable {
    package var stateDir: String
    package var secretsDir: String

    package init(stateDir: String, secretsDir: String? = nil) {
        self.stateDir = stateDir
        self.secretsDir = secretsDir ?? stateDir + "/secrets"
    }

    package static func fromEnvironment() -> Paths {
        Paths(
            stateDir: Environment.get("DRAVEN_STATE_DIR") ?? "/var/lib/draven",
            secretsDir: Environment.get("DRAVEN_SECRETS_DIR")
        )
    }

    package var database: String { stateDir + "/draven.db" }
    /// The key for API-token hashes (32 random bytes, mode 0640).
    package var tokenKey: String { secretsDir + "/token-hash.key" }
}
