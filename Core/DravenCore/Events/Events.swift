/// The event stream: what draven did, sent to each subscriber (`Subscriptions`) as CloudEvents
/// through the outbox. Owns the `events`, `event_deliveries` and `event_attempts` tables.
///
/// `publish` runs inside the transaction of what happened (a job's move: `Transition.Publish`;
/// a vote: `Approvals.vote`; a plan run's change: `PlanEngine`), so an event exists exactly when
/// its cause committed — a refused request, whose transaction rolls back, leaves none. It writes
/// the event once, and for each subscription whose filter takes it the next number of that
/// subscriber's stream (`sequence`, from 1) and an outbox row of kind `event` on the stream
/// `event:<subscription>`: `Outbox.claim` hands out a stream's rows one at a time, oldest first,
/// so each subscriber gets its events in order however many deliverers run (`Delivery.event`).
package enum Events {
    /// One event as stored: what `CloudEvent.document` renders.
    package struct Event: Sendable {
        package var id: Int64
        /// The CloudEvents `id` (and `webhook-id`): the same on every attempt and redelivery.
        package var eventID: String
        package var name: String
        package var type: String
        package var source: String
        package var subject: String
        package var at: Int64
        package var jobID: Int64?
        package var planRunID: Int64?
        package var traceparent: String?
        /// The CloudEvents `data` (JSON text).
        package var data: String
    }

    /// What happened, before it is published.
    package struct Draft: Sendable {
        /// `job/57`, `plan_run/12`: the CloudEvents `subject`.
        package var subject: String
        package var jobID: Int64?
        package var planRunID: Int64?
        package var traceparent: String?
        /// draven's own account of it: the `data` of a `dev.draven.…` event, the `customData` of a CDEvent.
        package var facts: JSONObject
        /// For a CDEvents type: the CDEvent subject's `type` (`pipelineRun`, `service`,
        /// `environment`), `id` and `content`.
        package var cdevent: (type: String, id: String, content: JSONObject)?
    }

    /// The stream an outbox row of `subscription` belongs to (`Outbox.claim` keeps its order).
    static func stream(_ subscription: String) -> String { "event:" + subscription }

    /// Publishes the event named `name` to every subscription whose filter takes it; nothing when
    /// none does (then `draft` is not even made).
    static func publish(_ tx: Transaction, _ name: String, now: Int64, _ draft: () throws -> Draft) throws {
        let subscriptions = try Subscriptions.load(tx.db)
        let takers = subscriptions.all.filter { $0.filter.matches(name) }
        guard !takers.isEmpty, let type = EventCatalog.types[name] else { return }
        let draft = try draft()
        let eventID = uuid()
        var data = draft.facts
        if let cd = draft.cdevent {
            // A CDEvent in its CloudEvents binding: the whole CDEvent is the data, its context
            // repeating the CloudEvent's id, source, type and time.
            data = [
                "context": [
                    "version": .string(EventCatalog.cdeventsVersion), "id": .string(eventID),
                    "source": .string(subscriptions.source), "type": .string(type),
                    "timestamp": .string(Clock.rfc3339(now)),
                ],
                "subject": [
                    "id": .string(cd.id), "source": .string(subscriptions.source), "type": .string(cd.type),
                    "content": .object(cd.content),
                ],
                "customData": .object(draft.facts),
                "customDataContentType": "application/json",
            ]
        }
        let event =
            try tx.db.first(
                """
                INSERT INTO events (event_id, name, type, source, subject, at, job_id, plan_run_id, traceparent, data)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id
                """,
                [
                    .text(eventID), .text(name), .text(type), .text(subscriptions.source), .text(draft.subject),
                    .int(now), .int(draft.jobID), .int(draft.planRunID), .text(draft.traceparent),
                    .text(JSON.object(data).serialized()),
                ]
            ) { $0.int(0) } ?? 0
        for subscription in takers {
            let sequence =
                try tx.db.first(
                    """
                    INSERT INTO event_deliveries (subscription, sequence, event)
                    SELECT ?1, coalesce(max(sequence), 0) + 1, ?2 FROM event_deliveries WHERE subscription = ?1
                    RETURNING sequence
                    """, [.text(subscription.id), .int(event)]
                ) { $0.int(0) } ?? 0
            try Outbox.enqueue(
                tx, kind: .event, job: nil,
                payload: ["event": .int(event), "subscription": .string(subscription.id), "sequence": .int(sequence)],
                now: now, stream: stream(subscription.id))
        }
    }

    /// Sends `event` again to its subscribers (or to `subscription` alone): a new outbox row each,
    /// at the end of the subscriber's stream, with the event's id and sequence number unchanged.
    /// Subscriptions no longer configured are skipped. Returns the new rows.
    package static func redeliver(
        _ tx: Transaction, event: Int64, subscription: String?, actor: String, now: Int64
    ) throws -> [Int64] {
        let configured = try Subscriptions.load(tx.db)
        let streams = try tx.db.query(
            """
            SELECT subscription, sequence FROM event_deliveries WHERE event = ?1 AND (?2 IS NULL OR subscription = ?2)
            ORDER BY subscription
            """, [.int(event), .text(subscription)]
        ) { ($0.text(0), $0.int(1)) }
        var rows: [Int64] = []
        for (name, sequence) in streams where configured.named(name) != nil {
            rows.append(
                try Outbox.enqueue(
                    tx, kind: .event, job: nil,
                    payload: [
                        "event": .int(event), "subscription": .string(name), "sequence": .int(sequence),
                        "redelivery": true,
                    ], now: now, stream: stream(name)))
        }
        if !rows.isEmpty {
            try Audit.record(
                tx, at: now, actor: actor, action: "events.redeliver", subject: "event/\(event)",
                detail: ["subscription": subscription.map(JSON.string) ?? .null, "rows": .int(Int64(rows.count))])
        }
        return rows
    }

    // MARK: - reads

    static let select =
        "SELECT id, event_id, name, type, source, subject, at, job_id, plan_run_id, traceparent, data FROM events"

    static func row(_ s: Statement) -> Event {
        Event(
            id: s.int(0), eventID: s.text(1), name: s.text(2), type: s.text(3), source: s.text(4), subject: s.text(5),
            at: s.int(6), jobID: s.optionalInt(7), planRunID: s.optionalInt(8), traceparent: s.optionalText(9),
            data: s.text(10))
    }

    package static func find(_ db: Database, id: Int64) throws -> Event? {
        try db.first(select + " WHERE id = ?1", [.int(id)], row)
    }

    /// An event by its row id or its CloudEvents id.
    package static func find(_ db: Database, named: String) throws -> Event? {
        if let id = Int64(named) { return try find(db, id: id) }
        return try db.first(select + " WHERE event_id = ?1", [.text(named)], row)
    }

    /// The events at or after `since`, oldest first (`draven events list` and `redeliver --since`).
    package static func since(_ db: Database, _ since: Int64, limit: Int) throws -> [Event] {
        try db.query(select + " WHERE at >= ?1 ORDER BY id LIMIT ?2", [.int(since), .int(Int64(limit))], row)
    }

    /// The newest `limit` events, oldest first.
    package static func recent(_ db: Database, limit: Int) throws -> [Event] {
        try db.query(
            "SELECT * FROM (" + select + " ORDER BY id DESC LIMIT ?1) ORDER BY id", [.int(Int64(limit))], row)
    }

    /// How an event stands with one subscriber: its sequence number, and its last delivery's
    /// state, attempts and status.
    package struct Stream: Sendable {
        package var subscription: String
        package var sequence: Int64
        package var state: String?
        package var attempts: Int64
        package var lastStatus: Int64?
    }

    package static func streams(_ db: Database, event: Int64) throws -> [Stream] {
        try db.query(
            """
            SELECT d.subscription, d.sequence,
                   (SELECT o.state FROM outbox o WHERE o.stream = 'event:' || d.subscription AND o.kind = 'event'
                      AND json_extract(o.payload, '$.event') = d.event ORDER BY o.id DESC LIMIT 1),
                   (SELECT count(*) FROM event_attempts a WHERE a.event = d.event AND a.subscription = d.subscription),
                   (SELECT a.status FROM event_attempts a WHERE a.event = d.event AND a.subscription = d.subscription
                      ORDER BY a.id DESC LIMIT 1)
            FROM event_deliveries d WHERE d.event = ?1 ORDER BY d.subscription
            """, [.int(event)]
        ) {
            Stream(
                subscription: $0.text(0), sequence: $0.int(1), state: $0.optionalText(2), attempts: $0.int(3),
                lastStatus: $0.optionalInt(4))
        }
    }

    /// One attempt of the delivery log.
    package struct Attempt: Sendable {
        package var subscription: String
        package var attempt: Int64
        package var at: Int64
        package var status: Int64?
        package var error: String?
        package var durationMS: Int64
    }

    /// Records one attempt (never the URL or the secret: `error` is built without them).
    static func logAttempt(
        _ tx: Transaction, outbox: Int64, subscription: String, event: Int64, attempt: Int, at: Int64, status: Int?,
        error: String?, durationMS: Int64
    ) throws {
        try tx.db.run(
            """
            INSERT INTO event_attempts (outbox_id, subscription, event, attempt, at, status, error, duration_ms)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            """,
            [
                .int(outbox), .text(subscription), .int(event), .int(Int64(attempt)), .int(at),
                .int(status.map(Int64.init)), .text(error), .int(durationMS),
            ])
    }

    /// The delivery log of `event`, oldest first.
    package static func attempts(_ db: Database, event: Int64) throws -> [Attempt] {
        try db.query(
            """
            SELECT subscription, attempt, at, status, error, duration_ms FROM event_attempts
            WHERE event = ?1 ORDER BY id
            """, [.int(event)]
        ) {
            Attempt(
                subscription: $0.text(0), attempt: $0.int(1), at: $0.int(2), status: $0.optionalInt(3),
                error: $0.optionalText(4), durationMS: $0.int(5))
        }
    }

    /// A random (version 4) UUID, lowercase: a CloudEvents id unique across installations.
    static func uuid() -> String {
        var b = Sodium.randomBytes(16)
        b[6] = b[6] & 0x0f | 0x40
        b[8] = b[8] & 0x3f | 0x80
        let hex = Array(Hex.encode(b).utf8)
        let parts = [hex[0..<8], hex[8..<12], hex[12..<16], hex[16..<20], hex[20..<32]]
        return parts.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "-")
    }
}
