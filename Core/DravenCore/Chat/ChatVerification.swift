/// Proving a chat-ops request came from its platform (../shared/reference/providers.md §4): each
/// platform's check over the raw request bytes, with the secret named in `[chatops.<platform>]`.
/// Owns the schemes and their messages; the handler (`ChatOps`) routes, refuses replays and runs
/// the command.
///
/// - Slack: `X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body))`,
///   `X-Slack-Request-Timestamp` within five minutes; the replay key is the signature.
/// - Teams outgoing webhook: `Authorization: HMAC base64(HMAC-SHA256(base64-decoded security
///   token, body))`; the replay key is the signed body (Teams signs no timestamp).
/// - Mattermost slash command: `Authorization: Token <token>` (or the `token` form field),
///   compared in constant time. The scheme has no timestamp and no replay key.
package enum ChatVerification {
    /// What a verified request is remembered by, so it is accepted once (`deliveries`).
    package typealias Replay = (source: String, key: String)

    static let window = SignedRequest.window

    /// The secret named by `[chatops.<platform>] <key>`.
    /// - Throws: `.badSignature` when the platform is not configured or its secret is missing (fail closed).
    package static func secret(_ platform: String, _ key: String, db: Database, paths: Paths) throws -> SecretBytes {
        let chatops = try Settings.get(db, "chatops").flatMap { try? JSON.parse($0) }
        guard let name = chatops?[platform]?[key]?.stringValue else {
            throw DravenError.badSignature(
                "\(platform) chat-ops is not configured ([chatops.\(platform)] \(key)); its requests are refused")
        }
        return try VerificationSecret.load(name, what: "the \(platform) \(key)", db: db, paths: paths)
    }

    /// - Returns: the replay key of the verified signature.
    /// - Throws: `.badSignature` naming the header that is missing, stale or wrong.
    package static func slack(_ request: Request, secret: SecretBytes, now: Int64) throws -> Replay {
        guard let timestamp = SignedRequest.timestamp(request.header("x-slack-request-timestamp")) else {
            throw DravenError.badSignature("X-Slack-Request-Timestamp is missing or not Unix seconds (digits only)")
        }
        guard abs(now - timestamp) <= window else {
            throw DravenError.badSignature("X-Slack-Request-Timestamp is more than five minutes away from now")
        }
        guard let signature = request.header("x-slack-signature") else {
            throw DravenError.badSignature("X-Slack-Signature is missing")
        }
        let expected = Sodium.hmacSHA256(key: secret, message: Array("v0:\(timestamp):".utf8) + request.body)
        guard Sodium.hexSignatureMatches(signature, prefix: "v0=", expected: expected),
            let key = SignedRequest.replayKey(timestamp: timestamp, hexSignature: signature, prefix: "v0=")
        else {
            throw DravenError.badSignature("X-Slack-Signature does not match")
        }
        return (source: "slack", key: key)
    }

    /// - Parameter token: the security token as Teams shows it (base64; the HMAC key is its bytes).
    /// - Returns: the replay key: a hash of the signed body itself, not of how the header spells
    ///   its MAC, so the same body is the same record however its signature is written.
    /// - Throws: `.badSignature` when the token is not base64, or the header is missing or wrong.
    package static func teams(_ request: Request, token: SecretBytes) throws -> Replay {
        guard var raw = token.withUnsafeBytes({ SecretsCrypto.base64Decode($0) }) else {
            throw DravenError.badSignature("the Teams security token in the secrets store is not base64")
        }
        let key = SecretBytes(copying: raw, label: "teams key")
        Sodium.wipe(&raw)
        guard let header = request.header("authorization") else {
            throw DravenError.badSignature("the Authorization header (HMAC signature) is missing")
        }
        guard header.hasPrefix("HMAC "), let given = SecretsCrypto.base64Decode(header.dropFirst(5).utf8) else {
            throw DravenError.badSignature("Authorization is not an HMAC signature (HMAC <base64>)")
        }
        guard Sodium.constantTimeEquals(given, Sodium.hmacSHA256(key: key, message: request.body)) else {
            throw DravenError.badSignature("Authorization: HMAC does not match the body")
        }
        return (source: "teams", key: Sodium.hashHex(request.body))
    }

    /// - Parameter form: the request's form fields (it is a form; the caller checked).
    /// - Throws: `.badSignature` when neither `Authorization: Token` nor the `token` field matches.
    package static func mattermost(_ request: Request, form: [String: String], token: SecretBytes) throws {
        var presented: String?
        if let header = request.header("authorization"), header.hasPrefix("Token ") {
            presented = String(header.dropFirst(6))
        }
        guard let given = presented ?? form["token"],
            Array(given.utf8).withUnsafeBytes({ token.constantTimeEquals($0) })
        else {
            throw DravenError.badSignature("the Mattermost command token does not match")
        }
    }
}
