internal import Glibc

/// Reads process environment variables (the CGI request and draven's own settings).
package enum Environment {
    package static func get(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Every `NAME=value` pair of the process environment.
    package static func all() -> [(String, String)] {
        var result: [(String, String)] = []
        forEach { name, value in
            result.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return result
    }

    /// Calls `body` with the bytes of each variable's name and value, without copying them
    /// (the request path reads ~20 variables per process; String searching costs more than that).
    package static func forEach(_ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Void) {
        var p = environ
        while let entry = p.pointee {
            p += 1
            let length = strlen(entry)
            entry.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                let all = UnsafeBufferPointer(start: bytes, count: length)
                guard let eq = all.firstIndex(of: UInt8(ascii: "=")) else { return }
                body(UnsafeBufferPointer(rebasing: all[..<eq]), UnsafeBufferPointer(rebasing: all[(eq + 1)...]))
            }
        }
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
    /// The datagram socket where `draven sweep --every` takes the outbox rows a function committed
    /// (`Handoff.nudge`); no file, or nobody bound to it, and the function execs draven-deliver.
    package var deliverSocket: String { database + "-deliver" }
    /// The key for API-token hashes (32 random bytes, mode 0640).
    package var tokenKey: String { secretsDir + "/token-hash.key" }
}
