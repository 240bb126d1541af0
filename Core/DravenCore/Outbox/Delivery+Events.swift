internal import Glibc

extension Delivery {
    /// Sends one event to one subscriber (an `event` row: `Events.publish`): the CloudEvents
    /// document, signed with the Standard Webhooks scheme under the subscription's key, POSTed to
    /// the URL its secret holds. Each attempt goes to the delivery log (`Events.logAttempt`: the
    /// status or why none came, never the URL or the secret). A 2xx delivers it; anything else is
    /// tried again with the outbox's backoff (10 s, 20 s, … capped at 10 min) until the
    /// subscription's `max_attempts`, then the row is dead (audited `event.dead`) and the
    /// subscriber's stream goes on with its next event. Either way the stream's next row, if due,
    /// is delivered next by this process (`following`), so a stream drains in order.
    mutating func event(_ row: Row, now: () -> Int64) throws {
        guard let eventRow = row.payload["event"]?.intValue, let name = row.payload["subscription"]?.stringValue,
            let sequence = row.payload["sequence"]?.intValue, let event = try Events.find(db, id: eventRow)
        else { return try settle(row.id, state: .dead, error: "event row without an event", now: now()) }
        defer { if let next = try? Outbox.nextInStream(db, Events.stream(name), now: now()) { following.append(next) } }
        guard let subscription = try Subscriptions.load(db).named(name) else {
            return try settle(
                row.id, state: .dead, error: "subscription \(name) is no longer configured", now: now())
        }
        var status: Int?
        var error: String?
        let started = Self.milliseconds()
        do {
            let body = CloudEvent.document(event, sequence: sequence)
            let timestamp = now()
            guard let key = StandardWebhooks.key(try secretsStore().secret(subscription.signingSecret)) else {
                throw DispatchError("the signing secret \(subscription.signingSecret) is not whsec_<base64>")
            }
            let request = OutboundRequest(
                method: "POST", url: "events subscription \(name)",
                headers: [
                    ("Content-Type", CloudEvent.contentType + "; charset=utf-8"), ("User-Agent", Dispatch.userAgent),
                    ("webhook-id", event.eventID), ("webhook-timestamp", String(timestamp)),
                    (
                        "webhook-signature",
                        StandardWebhooks.signature(key: key, id: event.eventID, timestamp: timestamp, body: body)
                    ),
                ],
                body: body, credential: .url, secretName: subscription.urlSecret, timeoutMS: 10_000)
            var redactor = Redactor.patternsOnly
            let credential = try credential(for: request, redactor: &redactor)
            let answer = try transport.send(request, credential: credential).status
            status = answer
            if !(200...299).contains(answer) { error = "answered \(answer)" }
        } catch let e as TransportError {
            // Not libcurl's message: it names the host and port, and the URL is the secret.
            error = e.timedOut ? "no answer within 10 s" : "no answer (the request failed)"
        } catch let e as SecretsError {
            error = "secrets store: \(e)"
        } catch let e as DispatchError {
            error = e.description
        }
        let at = now()
        let elapsed = Self.milliseconds() - started
        try db.immediate { tx in
            try Events.logAttempt(
                tx, outbox: row.id, subscription: name, event: eventRow, attempt: row.attempts, at: at,
                status: status, error: error, durationMS: elapsed)
            guard let error else { return try settle(tx, row.id, state: .delivered, error: nil, now: at) }
            if row.attempts < subscription.maxAttempts {
                try retryLater(tx, row, error: error, now: at)
            } else {
                try settle(tx, row.id, state: .dead, error: "gave up after \(row.attempts) attempts: \(error)", now: at)
                try Audit.record(
                    tx, at: at, actor: "draven-deliver", action: "event.dead", subject: "event/\(eventRow)",
                    outcome: "failed",
                    detail: [
                        "subscription": .string(name), "sequence": .int(sequence), "type": .string(event.type),
                        "attempts": .int(Int64(row.attempts)), "error": .string(error),
                    ])
            }
        }
    }

    /// A monotonic clock in milliseconds (an attempt's duration in the delivery log).
    static func milliseconds() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }
}
