package import DravenCore

/// `POST /chatops/slack`, `/chatops/teams`, `/chatops/mattermost`: each platform's request is
/// verified over its raw bytes with the secret named in `[chatops.<platform>]` before anything
/// in it is believed (../shared/reference/providers.md §4), then read into a `ChatCommand`.
///
/// - Slack: `X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body))`,
///   `X-Slack-Request-Timestamp` within five minutes; a signature is accepted once (a vote
///   remembers it), so a replay is 401. Slash command (`/draven approve 12`) or the buttons of
///   the approval request (`block_actions`, JSON in the `payload` form field).
/// - Teams outgoing webhook: `Authorization: HMAC base64(HMAC-SHA256(base64-decoded security
///   token, body))`; a signed body is accepted once.
/// - Mattermost slash command: `Authorization: Token <token>` (or the `token` form field),
///   compared in constant time. The scheme has no timestamp; votes are idempotent.
///
/// A request that fails verification is a 401 problem and changes nothing. A verified one always
/// answers 200 with a message the user can read in the chat, refusals included (they are audited
/// and change nothing else — but for a button, whose reply is a `chat.postEphemeral` row).
package enum ChatOps {
    static let window = SignedRequest.window

    static func slack(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let secret = try platformSecret("slack", "signing_secret", db: db, context: context)
        guard let timestamp = SignedRequest.timestamp(request.header("x-slack-request-timestamp")) else {
            throw DravenError.badSignature("X-Slack-Request-Timestamp is missing or not Unix seconds (digits only)")
        }
        guard abs(context.now - timestamp) <= window else {
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
        let replay = (source: "slack", key: key)
        try refuseReplay(db, replay)
        try requireForm(request)
        let form = request.formItems
        guard let payload = form["payload"] else {
            guard let user = form["user_id"] else { throw DravenError.malformed("the slash command has no user_id") }
            var command = ChatCommand(platform: "slack", userID: user, text: form["text"] ?? "")
            command.replay = replay
            let reply = try command.run(request, context)
            return Response(status: 200, json: ["response_type": .string(reply.public ? "in_channel" : "ephemeral"), "text": .string(reply.text)])
        }
        // A button of the approval request: the action names the decision, its value the job.
        let json = try JSON.parse(payload, duplicateKeys: .lastWins)  // Slack wrote it: read as its consumers do
        guard json["type"]?.stringValue == "block_actions", let user = json["user"]?["id"]?.stringValue,
              let action = json["actions"]?.arrayValue?.first, let value = action["value"]?.stringValue,
              let verb = ["draven_approve": "approve", "draven_reject": "reject"][action["action_id"]?.stringValue ?? ""]
        else { return Response(status: 200, json: [:]) }
        var command = ChatCommand(platform: "slack", userID: user, text: "\(verb) \(value)")
        command.replay = replay
        let reply = try command.run(request, context)
        // Slack shows nothing of the answer to a button: the clicker is told (refusals too) with an
        // ephemeral message, sent after the answer like every outbound call.
        if let channel = json["channel"]?["id"]?.stringValue ?? json["container"]?["channel_id"]?.stringValue,
           try Settings.get(db, "chatops").flatMap({ try? JSON.parse($0) })?["slack"]?["bot_token_secret"] != nil {
            _ = try db.immediate { tx in
                try Outbox.enqueue(tx, kind: .notify, job: nil, payload: [
                    "channel": .string(ApprovalMessages.channel), "action": "ephemeral", "slack_channel": .string(channel),
                    "user": .string(user), "text": .string(reply.text),
                ], now: context.now)
            }
        }
        return Response(status: 200, json: [:])
    }

    static func teams(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let token = try platformSecret("teams", "security_token_secret", db: db, context: context)
        // Teams shows the security token base64-encoded; the HMAC key is its decoded bytes.
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
        // Keyed on the signed body itself, not on how the header spells its MAC: the same body is
        // the same record however its signature is written (Teams signs no timestamp).
        let replay = (source: "teams", key: Sodium.hashHex(request.body))
        try refuseReplay(db, replay)
        let activity = try request.jsonBody(duplicateKeys: .lastWins)  // Teams wrote it
        guard let from = activity["from"], let user = from["aadObjectId"]?.stringValue ?? from["id"]?.stringValue else {
            throw DravenError.malformed("the activity has no from.aadObjectId or from.id")
        }
        var command = ChatCommand(platform: "teams", userID: user, text: ChatCommand.plainText(activity["text"]?.stringValue ?? ""))
        // Linked by the Azure AD object id or by the Teams user id, whichever the configuration names.
        if let id = from["id"]?.stringValue, id != user { command.alternateUserID = id }
        command.replay = replay
        let reply = try command.run(request, context)
        return Response(status: 200, json: ["type": "message", "text": .string(reply.text)])
    }

    static func mattermost(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let token = try platformSecret("mattermost", "token_secret", db: db, context: context)
        try requireForm(request)
        let form = request.formItems
        var presented: String?
        if let header = request.header("authorization"), header.hasPrefix("Token ") { presented = String(header.dropFirst(6)) }
        guard let given = presented ?? form["token"], Array(given.utf8).withUnsafeBytes({ token.constantTimeEquals($0) }) else {
            throw DravenError.badSignature("the Mattermost command token does not match")
        }
        guard let user = form["user_id"] else { throw DravenError.malformed("the slash command has no user_id") }
        let reply = try ChatCommand(platform: "mattermost", userID: user, text: form["text"] ?? "").run(request, context)
        return Response(status: 200, json: ["response_type": .string(reply.public ? "in_channel" : "ephemeral"), "text": .string(reply.text)])
    }

    /// The secret named by `[chatops.<platform>] <key>`.
    /// - Throws: `.badSignature` when the platform is not configured or its secret is missing (fail closed).
    static func platformSecret(_ platform: String, _ key: String, db: Database, context: Context) throws -> SecretBytes {
        context.subject = "chatops/\(platform)"
        guard let name = try Settings.get(db, "chatops").flatMap({ try? JSON.parse($0) })?[platform]?[key]?.stringValue else {
            throw DravenError.badSignature("\(platform) chat-ops is not configured ([chatops.\(platform)] \(key)); its requests are refused")
        }
        return try VerificationSecret.load(name, what: "the \(platform) \(key)", db: db, paths: context.paths)
    }

    static func refuseReplay(_ db: Database, _ replay: (source: String, key: String)) throws {
        if try Deliveries.seen(db, source: replay.source, key: replay.key) {
            throw DravenError.badSignature("this signed request was already used (replay)")
        }
    }

    static func requireForm(_ request: Request) throws {
        guard request.mediaType == "application/x-www-form-urlencoded" else {
            throw DravenError.unsupportedMediaType(expected: "application/x-www-form-urlencoded", got: request.contentType)
        }
    }
}
