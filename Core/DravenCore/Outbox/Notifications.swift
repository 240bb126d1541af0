/// Announcing how a job ended. `Transition.Notify` calls `enqueue` in the transaction that ends a
/// job (succeeded, failed, timed out, cancelled); one outbox row per channel the project's
/// `[notify]` names. The rows name secrets (the Slack and Teams webhook URLs are credentials)
/// and carry the text; `Delivery` sends them after the commit.
package enum Notifications {
    static let announced: JobStates = [.succeeded, .failed, .timedOut, .cancelled]

    /// The rows announcing that the job of `ended` is now `ended.to`.
    static func enqueue(_ tx: Transaction, _ ended: Transition) throws {
        let job = ended.job
        let id = job.id
        let state = ended.to
        let now = ended.now
        let link = job.logURL ?? job.runURL
        let summary =
            "\(job.kind.rawValue) #\(job.id) of \(job.project) \(job.ref) to \(job.environment) "
            + "\(words(state)) (asked by \(job.requestedBy))"
        let text = "draven: " + summary + (link.map { " — log: \($0)" } ?? "")
        try enqueue(
            tx, projectID: job.projectID, job: id, text: text, subject: "[draven] " + summary,
            payload: ["job_id": .int(id), "state": .string(state.rawValue)], now: now)
    }

    /// One row per channel of the project's `[notify]` carrying `text` (and `payload`'s members,
    /// first): what a job's end and a plan's notify step send.
    static func enqueue(
        _ tx: Transaction, projectID: Int64, job: Int64?, text: String, subject: String, payload: JSONObject,
        now: Int64
    ) throws {
        let notify = try Target.notify(tx.db, projectID: projectID)
        guard notify.count > 0 else { return }
        let common = payload.merging(["text": .string(text)])
        if let secret = notify["slack_webhook_secret"]?.stringValue {
            try Outbox.enqueue(
                tx, kind: .notify, job: job, payload: common.merging(["channel": "slack", "secret": .string(secret)]),
                now: now)
        }
        if let secret = notify["teams_webhook_secret"]?.stringValue {
            try Outbox.enqueue(
                tx, kind: .notify, job: job, payload: common.merging(["channel": "teams", "secret": .string(secret)]),
                now: now)
        }
        if let to = notify["email"]?.arrayValue, !to.isEmpty {
            try Outbox.enqueue(
                tx, kind: .notify, job: job,
                payload: common.merging(["channel": "email", "to": .array(to), "subject": .string(subject)]), now: now)
        }
    }

    static func words(_ state: JobState) -> String {
        switch state {
        case .succeeded: "succeeded"
        case .failed: "FAILED"
        case .timedOut: "TIMED OUT (the runner went silent)"
        case .cancelled: "was cancelled"
        default: state.rawValue
        }
    }

    /// The request that sends a notification row.
    /// - Throws: `DispatchError` when the row cannot be sent as configured.
    static func request(_ payload: JSON, smtp: JSONObject?, now: Int64) throws(DispatchError) -> OutboundRequest {
        let text = payload["text"]?.stringValue ?? ""
        switch payload["channel"]?.stringValue {
        case "slack":
            return OutboundRequest(
                method: "POST", url: "Slack incoming webhook", headers: [("Content-Type", "application/json")],
                body: JSON.object(["text": .string(text)]).serializedBytes(), credential: .url,
                secretName: payload["secret"]?.stringValue, timeoutMS: 10_000)
        case "teams":
            // A Teams Workflows (Power Automate) webhook takes an Adaptive Card message.
            let card: JSON = [
                "type": "message",
                "attachments": [
                    [
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "content": [
                            "type": "AdaptiveCard", "version": "1.4",
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "body": [["type": "TextBlock", "text": .string(text), "wrap": true]],
                        ],
                    ]
                ],
            ]
            return OutboundRequest(
                method: "POST", url: "Teams workflow webhook", headers: [("Content-Type", "application/json")],
                body: card.serializedBytes(), credential: .url, secretName: payload["secret"]?.stringValue,
                timeoutMS: 10_000)
        case "email":
            guard let smtp, let url = smtp["url"]?.stringValue, let from = smtp["from"]?.stringValue else {
                throw DispatchError("email notifications need an [smtp] section with url and from")
            }
            let to = payload["to"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let subject = payload["subject"]?.stringValue ?? "draven"
            let message = [
                "From: \(from)", "To: \(to.joined(separator: ", "))", "Subject: \(subject)",
                "Date: \(Clock.rfc2822(now))", "Message-ID: <draven-\(payload["job_id"]?.intValue ?? 0)-\(now)@draven>",
                "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
                text, "",
            ].joined(separator: "\r\n")
            let username = smtp["username"]?.stringValue
            return OutboundRequest(
                method: "MAIL", url: url, headers: [], body: Array(message.utf8),
                credential: username.map { .smtpLogin(username: $0) }, secretName: smtp["password_secret"]?.stringValue,
                timeoutMS: 15_000, mail: .init(from: from, to: to, requireTLS: smtp["starttls"]?.boolValue ?? false))
        default:
            throw DispatchError("unknown notification channel")
        }
    }
}
