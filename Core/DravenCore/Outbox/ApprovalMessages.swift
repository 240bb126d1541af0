/// Owns the `approval_messages` table (where each request was posted).
///
/// Approval requests in chat. When a job enters `awaiting_approval`,
/// `Transition.UpdateApprovalMessages` calls `enqueue` in the same transaction: one outbox row
/// posts the request to the project's Slack channel (`notify.slack_channel`, with Approve/Reject
/// buttons, through `chat.postMessage` and the bot token) and one posts it to its Teams webhook
/// (text: Teams outgoing webhooks cannot carry buttons, so people answer `@draven approve N`).
/// When the job leaves `awaiting_approval` (approved, rejected, expired, cancelled), the Slack
/// message is updated (`chat.update`, buttons removed) and Teams gets the outcome. `Delivery`
/// sends the rows. A job's rows for one platform are a stream (`Outbox.enqueue`): the update is
/// not sent until the request it updates was posted, however many deliverers run at once.
package enum ApprovalMessages {
    package static let channel = "slack_approval"

    /// The rows for `move`, which enters or leaves `awaiting_approval`.
    static func enqueue(_ tx: Transaction, _ move: Transition) throws {
        let job = move.job
        let id = job.id
        let to = move.to
        let now = move.now
        let notify = try Target.notify(tx.db, projectID: job.projectID)
        let slackChannel = notify["slack_channel"]?.stringValue
        let teams = notify["teams_webhook_secret"]?.stringValue
        guard slackChannel != nil || teams != nil else { return }
        let rules = try Approvals.Rules.load(tx.db, environmentID: job.environmentID)
        let what =
            "deploy #\(job.id) of \(job.project) \(job.ref) to \(job.environment) (asked by \(job.requestedBy)"
            + (job.reason.isEmpty ? ")" : ": \(job.reason))")
        let text: String
        if to == .awaitingApproval {
            text =
                "draven: \(what) needs \(rules.required) approval\(rules.required == 1 ? "" : "s") from "
                + "\(rules.groupNames)"
        } else {
            text = "draven: \(what) " + (try outcome(tx.db, job: job, rules: rules, state: to))
        }
        if let slackChannel {
            try Outbox.enqueue(
                tx, kind: .notify, job: id,
                payload: [
                    "channel": .string(channel), "action": .string(to == .awaitingApproval ? "post" : "update"),
                    "job_id": .int(id),
                    "slack_channel": .string(slackChannel), "text": .string(text),
                    "blocks": blocks(text, job: id, buttons: to == .awaitingApproval),
                ], now: now, stream: "approval:slack:\(id)")
        }
        if let teams {
            let how = to == .awaitingApproval ? " — answer with @draven approve \(id) or @draven reject \(id)" : ""
            try Outbox.enqueue(
                tx, kind: .notify, job: id,
                payload: [
                    "channel": "teams", "secret": .string(teams), "job_id": .int(id), "state": .string(to.rawValue),
                    "text": .string(text + how),
                ], now: now, stream: "approval:teams:\(id)")
        }
    }

    /// How the wait ended, in words.
    static func outcome(_ db: Database, job: Job, rules: Approvals.Rules, state: JobState) throws -> String {
        switch state {
        case .dispatching, .queued:
            let who = try Approvals.approvers(db, job: job.id, sha: job.sha ?? "", policyVersion: rules.version)
            return "was approved by \(who.joined(separator: ", ")) — "
                + (state == .queued ? "queued until the environment is free" : "deploying")
        case .rejected:
            let by = try Approvals.lastRejection(db, job: job.id)
            return "was REJECTED" + (by.map { " by \($0.0)" + ($0.1.isEmpty ? "" : ": \($0.1)") } ?? "")
        case .expired:
            return "EXPIRED: not enough approvals within \(duration(rules.ttl))"
        default:
            return "was \(state.rawValue)"
        }
    }

    /// `86400` → `1d`, `5400` → `90m`, `45` → `45s`: the largest unit that divides it.
    static func duration(_ seconds: Int64) -> String {
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where seconds % size == 0 {
            return "\(seconds / size)\(unit)"
        }
        return "\(seconds)s"
    }

    /// Slack Block Kit: the text, and while undecided, Approve and Reject buttons whose value is the job id.
    static func blocks(_ text: String, job: Int64, buttons: Bool) -> JSON {
        var blocks: [JSON] = [["type": "section", "text": ["type": "mrkdwn", "text": .string(escape(text))]]]
        if buttons {
            func button(_ label: String, _ action: String, _ style: String) -> JSON {
                [
                    "type": "button", "action_id": .string(action), "style": .string(style),
                    "value": .string(String(job)),
                    "text": ["type": "plain_text", "text": .string(label)],
                ]
            }
            blocks.append([
                "type": "actions", "block_id": .string("draven_job_\(job)"),
                "elements": [
                    button("Approve", "draven_approve", "primary"), button("Reject", "draven_reject", "danger"),
                ],
            ])
        }
        return .array(blocks)
    }

    /// Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping).
    static func escape(_ s: String) -> String {
        s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }

    // MARK: delivery

    /// The Slack Web API call for a row: `chat.postMessage`, `chat.update` of the message posted
    /// for the job, or `chat.postEphemeral` (the answer to a button click).
    /// - Throws: `DispatchError` when Slack is not configured; a retryable `TransportError` when
    ///   the request this update is for has not been posted yet.
    static func request(_ db: Database, _ payload: JSON) throws -> OutboundRequest {
        let slack = try Settings.get(db, "chatops").flatMap { try? JSON.parse($0) }?["slack"]
        guard let token = slack?["bot_token_secret"]?.stringValue else {
            throw DispatchError("[chatops.slack] has no bot_token_secret")
        }
        let api = slack?["api_url"]?.stringValue ?? "https://slack.com/api"
        var body: JSONObject = [
            "channel": payload["slack_channel"] ?? .null, "text": payload["text"] ?? .null,
            "blocks": payload["blocks"] ?? .array([]),
        ]
        var method = "chat.postMessage"
        if payload["action"]?.stringValue == "ephemeral" {  // the answer to a button, for the clicker only
            body = [
                "channel": payload["slack_channel"] ?? .null, "user": payload["user"] ?? .null,
                "text": payload["text"] ?? .null,
            ]
            method = "chat.postEphemeral"
        } else if payload["action"]?.stringValue == "update" {
            let job = payload["job_id"]?.intValue ?? 0
            guard
                let posted = try db.first(
                    "SELECT channel, ts FROM approval_messages WHERE job_id = ?1 AND platform = 'slack'",
                    [.int(job)], { ($0.text(0), $0.text(1)) })
            else {
                throw TransportError(message: "the approval request of job \(job) is not posted yet", retryable: true)
            }
            body["channel"] = .string(posted.0)
            body["ts"] = .string(posted.1)
            method = "chat.update"
        }
        return OutboundRequest(
            method: "POST", url: api + "/" + method, headers: [("Content-Type", "application/json; charset=utf-8")],
            body: JSON.object(body).serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "),
            secretName: token, timeoutMS: 10_000)
    }

    /// Reads a 2xx answer of the Slack Web API, which reports errors as `{"ok": false, "error": …}`.
    static func outcome(_ response: OutboundResponse) -> (
        error: String?, retry: Bool, posted: (channel: String, ts: String)?
    ) {
        guard let answer = try? JSON.parse(response.body), let ok = answer["ok"]?.boolValue else {
            return ("Slack answered without an ok field", true, nil)
        }
        guard ok else {
            let error = answer["error"]?.stringValue ?? "unknown"
            return ("Slack refused the message: \(error)", error == "ratelimited" || error == "internal_error", nil)
        }
        if let channel = answer["channel"]?.stringValue, let ts = answer["ts"]?.stringValue {
            return (nil, false, (channel, ts))
        }
        return (nil, false, nil)
    }

    /// Remembers where the request was posted, for the update.
    static func remember(_ tx: Transaction, job: Int64, channel: String, ts: String) throws {
        try tx.db.run(
            "INSERT OR REPLACE INTO approval_messages (job_id, platform, channel, ts) VALUES (?1, 'slack', ?2, ?3)",
            [.int(job), .text(channel), .text(ts)])
    }
}
