/// The runner HMAC, shared by the final callback (`POST /hooks/runner`) and heartbeats
/// (`POST /api/v1/jobs/{id}/heartbeat`): `X-Draven-Timestamp: <unix seconds>` and
/// `X-Draven-Signature: v1=<hex HMAC-SHA256(runner_secret, timestamp + "." + body)>`, the secret
/// being the project's `runner_secret` (a shell runner signs with `openssl dgst -sha256 -hmac`).
/// The timestamp must be within five minutes of now.
package enum RunnerSignature {
    static let window: Int64 = 300

    /// The two headers, checked for presence and freshness before anything is looked up.
    /// - Throws: `.badSignature` naming the header that is missing, malformed or stale.
    package static func headers(_ request: Request, now: Int64) throws -> (timestamp: Int64, signature: String) {
        guard let timestamp = SignedRequest.timestamp(request.header("x-draven-timestamp")) else {
            throw DravenError.badSignature("X-Draven-Timestamp is missing or not Unix seconds (digits only)")
        }
        guard let signature = request.header("x-draven-signature") else {
            throw DravenError.badSignature("X-Draven-Signature is missing")
        }
        guard abs(now - timestamp) <= window else {
            throw DravenError.badSignature("X-Draven-Timestamp is more than five minutes away from now")
        }
        return (timestamp, signature)
    }

    /// Verifies the signature over the raw body with the runner secret of `project`.
    /// - Returns: the replay key of the verified signature (`SignedRequest.replayKey`).
    /// - Throws: `.badSignature` when the project has no runner secret or the signature does not
    ///   match (constant-time compare); `.storeNotReady` when the secrets store cannot be read.
    @discardableResult
    package static func verify(
        _ request: Request, timestamp: Int64, signature: String, project: String, db: Database,
        paths: Paths
    ) throws -> String {
        try verified(request, timestamp: timestamp, signature: signature, project: project, db: db, paths: paths).key
    }

    /// `verify`, also lending the runner secret it verified with (to mask it in a log chunk:
    /// `POST /hooks/runner/log`). The secret stays in its `SecretBytes`, wiped when released.
    package static func verified(
        _ request: Request, timestamp: Int64, signature: String, project: String, db: Database,
        paths: Paths
    ) throws -> (key: String, secret: SecretBytes) {
        let integration = try HookIntegration.find(
            db, providers: Provider.allCases, project: project, body: [],
            request: request)
        let secret = try integration.secret("runner_secret", db: db, paths: paths)
        let expected = Sodium.hmacSHA256(key: secret, prefix: Array("\(timestamp).".utf8), message: request.body)
        guard Sodium.hexSignatureMatches(signature, prefix: "v1=", expected: expected),
            let key = SignedRequest.replayKey(timestamp: timestamp, hexSignature: signature, prefix: "v1=")
        else {
            throw DravenError.badSignature("X-Draven-Signature does not match")
        }
        return (key, secret)
    }
}

/// What the signed-request checks (runner, Slack; Teams has no timestamp) share: the timestamp
/// read strictly, and replay records keyed on what was signed, not on how the headers spell it.
package enum SignedRequest {
    /// How far a signed timestamp may be from now (s): five minutes, as Slack and the runner use.
    package static let window: Int64 = 300

    /// Unix seconds as a signer writes them: ASCII digits only, no sign, no leading zero, no
    /// spaces, at most 12 digits. `+1700000000` or `01700000000` would parse to the same number
    /// (and so verify the same signature) while being a different string: refused.
    package static func timestamp(_ header: String?) -> Int64? {
        guard let header else { return nil }
        let u = header.utf8
        let digits = u.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        guard (1...12).contains(u.count), digits, u.count == 1 || u.first != 0x30 else {
            return nil
        }
        return Int64(header)
    }

    /// The key a verified signature is remembered by: the parsed timestamp and the decoded MAC
    /// bytes (re-encoded in lower-case hex), so the same signature written in upper case, or
    /// its timestamp written another way, is the same record and a replay.
    package static func replayKey(timestamp: Int64, hexSignature: String, prefix: String) -> String? {
        guard hexSignature.hasPrefix(prefix), let mac = Hex.decode(String(hexSignature.dropFirst(prefix.count))) else {
            return nil
        }
        return "\(timestamp):" + Hex.encode(mac)
    }
}
