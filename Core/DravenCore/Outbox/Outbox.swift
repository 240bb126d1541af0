/// Owns the `outbox` table: outbound calls waiting to be made. A transaction that decides a
/// call is due writes a row here; `draven-deliver` (run after the response is sent) and
/// `draven sweep` make the call (`Delivery`), claiming and settling rows through this type.
/// Payloads name secrets, never copy them.
package enum Outbox {
    /// `poll` asks a run's state, `cancel` asks the provider to cancel a run (`RunControl`);
    /// `check` is a plan's HTTP check (`PlanEngine.checkAnswered`); `event` is one event for one
    /// subscriber (`Events`, `Delivery.event`).
    package enum Kind: String, Sendable { case dispatch, notify, poll, cancel, check, event }

    /// - Parameter stream: rows of one stream are delivered one at a time, oldest first (`claim`):
    ///   a subscriber's events (`Events.stream`), a job's approval messages on one chat platform
    ///   (`ApprovalMessages`). Nil: the row is on its own. A function hands its
    ///   deliverer a transaction's stream rows after its other rows (dispatches first).
    @discardableResult
    package static func enqueue(
        _ tx: Transaction, kind: Kind, job: Int64?, payload: JSONObject, now: Int64, stream: String? = nil
    ) throws -> Int64 {
        let id =
            try tx.db.first(
                """
                INSERT INTO outbox (kind, job_id, payload, next_attempt_at, created_at, stream)
                VALUES (?1, ?2, ?3, ?4, ?4, ?5) RETURNING id
                """,
                [.text(kind.rawValue), .int(job), .text(JSON.object(payload).serialized()), .int(now), .text(stream)]
            ) {
                $0.int(0)
            } ?? 0
        tx.enqueued(id, last: stream != nil)
        return id
    }

    /// Rows due now (pending, or claimed by a process whose lease ran out), oldest first.
    package static func due(_ db: Database, now: Int64, limit: Int) throws -> [Int64] {
        try db.query(
            """
            SELECT id FROM outbox WHERE state IN ('pending', 'delivering') AND next_attempt_at <= ?1
            ORDER BY id LIMIT ?2
            """, [.int(now), .int(Int64(limit))]
        ) { $0.int(0) }
    }

    /// A claimed row, as its deliverer reads it.
    package struct Claimed {
        package var id: Int64
        package var kind: String
        package var jobID: Int64?
        package var payload: JSON
        package var attempts: Int
    }

    /// Claims row `id` if it is due: one UPDATE, so two deliverers never both win. The claim is
    /// a lease of `lease` seconds (a deliverer that dies lets it expire) and counts an attempt.
    /// A row of a stream is claimed only when no older row of its stream is pending or being
    /// delivered: the stream's oldest undelivered row goes first, whoever asks (a dead row no
    /// longer holds the stream back).
    /// - Returns: the row, or nil when it is not due (delivered, claimed by another process, or
    ///   behind an older row of its stream).
    static func claim(_ tx: Transaction, id: Int64, lease: Int64, now: Int64) throws -> Claimed? {
        try tx.db.first(
            """
            UPDATE outbox SET state = 'delivering', attempts = attempts + 1, next_attempt_at = ?2
            WHERE id = ?1 AND state IN ('pending', 'delivering') AND next_attempt_at <= ?3
              AND (stream IS NULL OR NOT EXISTS (
                    SELECT 1 FROM outbox b WHERE b.stream = outbox.stream AND b.id < outbox.id
                      AND b.state IN ('pending', 'delivering')))
            RETURNING id, kind, job_id, payload, attempts
            """, [.int(id), .int(now + lease), .int(now)]
        ) {
            Claimed(
                id: $0.int(0), kind: $0.text(1), jobID: $0.optionalInt(2),
                payload: (try? JSON.parse($0.text(3))) ?? .null, attempts: Int($0.int(4)))
        }
    }

    /// The oldest row of `stream` still to deliver, if it is due: what a deliverer that just
    /// settled a row of the stream delivers next.
    static func nextInStream(_ db: Database, _ stream: String, now: Int64) throws -> Int64? {
        try db.first(
            """
            SELECT id, next_attempt_at FROM outbox WHERE stream = ?1 AND state IN ('pending', 'delivering')
            ORDER BY id LIMIT 1
            """, [.text(stream)]
        ) { $0.int(1) <= now ? $0.int(0) : nil } ?? nil
    }

    /// Puts a claimed row back to wait until `at` for its next attempt.
    static func reschedule(_ tx: Transaction, id: Int64, at: Int64, error: String) throws {
        try tx.db.run(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
            [.int(id), .int(at), .text(error)])
    }

    /// Records a row's final outcome (`delivered` or `dead`).
    /// Counts it in `outbox_totals` (kind, final state, attempts) for `/metrics`, once: a row
    /// already settled is left alone.
    static func settle(_ tx: Transaction, id: Int64, state: OutboxState, error: String?, now: Int64) throws {
        guard
            let (kind, attempts) = try tx.db.first(
                """
                UPDATE outbox SET state = ?2, delivered_at = ?3, last_error = ?4
                WHERE id = ?1 AND state IN ('pending', 'delivering') RETURNING kind, attempts
                """, [.int(id), .text(state.rawValue), .int(now), .text(error)], { ($0.text(0), $0.int(1)) })
        else { return }
        try tx.db.run(
            """
            INSERT INTO outbox_totals (kind, state, count, attempts) VALUES (?1, ?2, 1, ?3)
            ON CONFLICT DO UPDATE SET count = count + 1, attempts = attempts + excluded.attempts
            """, [.text(kind), .text(state.rawValue), .int(attempts)])
    }

    /// One outbound call about a job, as its history shows it: what it was, how it stands, how
    /// many attempts it took and the last error (each failed dispatch attempt is also an audit
    /// record, `dispatch.retry`, with its own error: `Audit.about`).
    package struct Row: Sendable {
        package var id: Int64
        package var kind: String
        package var state: OutboxState?
        package var attempts: Int64
        package var createdAt: Int64
        package var nextAttemptAt: Int64
        package var deliveredAt: Int64?
        package var lastError: String?
        /// What the call carries (JSON text; never a secret: secrets are named, not copied).
        package var payload: String
    }

    /// Every row about `job`, oldest first (on the `outbox_job` index).
    package static func rows(_ db: Database, job: Int64) throws -> [Row] {
        try db.query(
            """
            SELECT id, kind, state, attempts, created_at, next_attempt_at, delivered_at, last_error, payload
            FROM outbox WHERE job_id = ?1 ORDER BY id
            """, [.int(job)]
        ) {
            Row(
                id: $0.int(0), kind: $0.text(1), state: OutboxState(rawValue: $0.text(2)), attempts: $0.int(3),
                createdAt: $0.int(4), nextAttemptAt: $0.int(5), deliveredAt: $0.optionalInt(6),
                lastError: $0.optionalText(7), payload: $0.text(8))
        }
    }

    /// Rows by kind and state, with the retries made (attempts after each row's first) (`/metrics`):
    /// those still due from the `outbox_due` index, those settled from `outbox_totals` (the table
    /// itself, which keeps every row ever sent, is never scanned).
    package static func counts(_ db: Database) throws -> [(kind: String, state: String, count: Int64, retries: Int64)] {
        try db.query(
            """
            SELECT kind, state, count(*), sum(max(attempts - 1, 0)) FROM outbox WHERE state IN ('pending', 'delivering')
            GROUP BY kind, state
            UNION ALL SELECT kind, state, count, max(attempts - count, 0) FROM outbox_totals ORDER BY 1, 2
            """
        ) { ($0.text(0), $0.text(1), $0.int(2), $0.int(3)) }
    }
}
