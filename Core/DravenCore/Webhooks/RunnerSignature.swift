/// The runner HMAC, shared by the final callback (`POST /hooks/runner`) and heartbeats
/// (`POST /api/v1/jobs/{id}/heartbeat`): `X-Draven-Timestamp: <unix seconds>` and
/// `X-Draven-Signature: v1=<hex HMAC-SHA256(runner_secret, timestamp + "." + body)>`, the secret
/// being the project's `runner_secret` (a shell runner signs with `openssl dgst -sha256 -hmac`).
/// The timestamp must be within five minutes of now.
enum RunnerSignature {
    static let window: Int64 = 300

    /// The two headers, checked for presence and freshness before anything is looked up.
    /// - Throws: `.badSignature` naming the header that is missing, malformed or stale.
    static func headers(_ request: Request, now: Int64) throws -> (timestamp: Int64, signature: String) {
        guard let timestamp = request.header("x-draven-timestamp").flatMap({ Int64($0) }) else {
            throw DravenError.badSignature("X-Draven-Timestamp is missing or not a number")
        }
        guard let signature = request.header("x-draven-signature") else { throw DravenError.badSignature("X-Draven-Signature is missing") }
        guard abs(now - timestamp) <= window else {
            throw DravenError.badSignature("X-Draven-Timestamp is more than five minutes away from now")
        }
        return (timestamp, signature)
    }

    /// Verifies the signature over the raw body with the runner secret of `project`.
    /// - Throws: `.badSignature` when the project has no runner secret or the signature does not
    ///   match (constant-time compare); `.storeNotReady` when the secrets store cannot be read.
    static func verify(_ request: Request, timestamp: Int64, signature: String, project: String, db: Database, paths: Paths) throws {
        let integration = try HookIntegration.find(db, providers: ["github", "gitlab", "bitbucket", "bitbucket-dc"], project: project,
                                                   body: [], request: request)
        let secret = try integration.secret("runner_secret", db: db, paths: paths)
        let signed = Array("\(timestamp).".utf8) + request.body
        guard Sodium.hexSignatureMatches(signature, prefix: "v1=", expected: Sodium.hmacSHA256(key: secret, message: signed)) else {
            throw DravenError.badSignature("X-Draven-Signature does not match")
        }
    }
}
