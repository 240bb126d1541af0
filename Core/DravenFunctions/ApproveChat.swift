package import DravenCore

/// `POST /chatops/slack`, `/chatops/teams`, `/chatops/mattermost`: each platform's request is
/// verified over its raw bytes with the secret named in `[chatops.<platform>]` before anything
/// in it is believed (`ChatVerification`, which holds the schemes), then read into a `ChatCommand`.
///
/// - Slack: a signature is accepted once (a vote remembers it), so a replay is 401. Slash command
///   (`/draven approve 12`) or the buttons of the approval request (`block_actions`, JSON in the
///   `payload` form field).
/// - Teams outgoing webhook: a signed body is accepted once.
/// - Mattermost slash command: the scheme has no timestamp; votes are idempotent, and a deploy is
///   remembered by the command's `trigger_id` (a resent request deploys nothing).
///
/// A request that fails verification is a 401 problem and changes nothing. A verified one always
/// answers 200 with a message the user can read in the chat, refusals included (they are audited
/// and change nothing else — but for a button, whose reply is a `chat.postEphemeral` row).
package enum ChatOps {
    static func slack(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let secret = try platformSecret("slack", "signing_secret", db: db, context: context)
        let replay = try ChatVerification.slack(request, secret: secret, now: context.now)
        try refuseReplay(db, replay)
        try requireForm(request)
        let form = request.formItems
        guard let payload = form["payload"] else {
            guard let user = form["user_id"] else { throw DravenError.malformed("the slash command has no user_id") }
            var command = ChatCommand(platform: "slack", userID: user, text: form["text"] ?? "")
            command.replay = replay
            let reply = try command.run(request, context)
            return Response(
                status: 200,
                json: [
                    "response_type": .string(reply.public ? "in_channel" : "ephemeral"), "text": .string(reply.text),
                ])
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
            try Settings.get(db, "chatops").flatMap({ try? JSON.parse($0) })?["slack"]?["bot_token_secret"] != nil
        {
            _ = try db.immediate { tx in
                try Outbox.enqueue(
                    tx, kind: .notify, job: nil,
                    payload: [
                        "channel": .string(ApprovalMessages.channel), "action": "ephemeral",
                        "slack_channel": .string(channel),
                        "user": .string(user), "text": .string(reply.text),
                    ], now: context.now)
            }
        }
        return Response(status: 200, json: [:])
    }

    static func teams(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let token = try platformSecret("teams", "security_token_secret", db: db, context: context)
        let replay = try ChatVerification.teams(request, token: token)
        try refuseReplay(db, replay)
        let activity = try request.jsonBody(duplicateKeys: .lastWins)  // Teams wrote it
        guard let from = activity["from"], let user = from["aadObjectId"]?.stringValue ?? from["id"]?.stringValue else {
            throw DravenError.malformed("the activity has no from.aadObjectId or from.id")
        }
        var command = ChatCommand(
            platform: "teams", userID: user, text: ChatCommand.plainText(activity["text"]?.stringValue ?? ""))
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
        try ChatVerification.mattermost(request, form: form, token: token)
        guard let user = form["user_id"] else { throw DravenError.malformed("the slash command has no user_id") }
        var command = ChatCommand(platform: "mattermost", userID: user, text: form["text"] ?? "")
        command.triggerID = form["trigger_id"].flatMap { $0.isEmpty ? nil : $0 }
        let reply = try command.run(request, context)
        return Response(
            status: 200,
            json: ["response_type": .string(reply.public ? "in_channel" : "ephemeral"), "text": .string(reply.text)])
    }

    /// The secret named by `[chatops.<platform>] <key>` (`ChatVerification.secret`), the request
    /// being audited as `chatops/<platform>` from here on.
    /// - Throws: `.badSignature` when the platform is not configured or its secret is missing (fail closed).
    static func platformSecret(_ platform: String, _ key: String, db: Database, context: Context) throws -> SecretBytes
    {
        context.subject = "chatops/\(platform)"
        return try ChatVerification.secret(platform, key, db: db, paths: context.paths)
    }

    static func refuseReplay(_ db: Database, _ replay: ChatVerification.Replay) throws {
        if try Deliveries.seen(db, source: replay.source, key: replay.key) {
            throw DravenError.badSignature("this signed request was already used (replay)")
        }
    }

    static func requireForm(_ request: Request) throws {
        guard request.mediaType == "application/x-www-form-urlencoded" else {
            throw DravenError.unsupportedMediaType(
                expected: "application/x-www-form-urlencoded", got: request.contentType)
        }
    }
}
