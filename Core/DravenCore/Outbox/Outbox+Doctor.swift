extension Outbox {
    /// Outbox rows that are lost (`draven doctor`): every row must be delivered (with its time),
    /// dead with the reason recorded, or still due — pending or delivering with its next attempt
    /// before `now + dueWithin`; and every `dispatching` job must have a dispatch row still to
    /// deliver (else nothing will ever start or fail it but `draven sweep`'s dispatch limit).
    package static func problems(
        _ db: Database, now: Int64,
        dueWithin: Int64
    ) throws -> [(subject: String, message: String)] {
        var found: [(subject: String, message: String)] = []
        _ = try db.query(
            """
            SELECT id, kind, job_id, state, next_attempt_at, delivered_at, last_error FROM outbox
            WHERE NOT (state = 'delivered' AND delivered_at IS NOT NULL)
              AND NOT (state = 'dead' AND coalesce(last_error, '') != '')
              AND NOT (state IN ('pending', 'delivering') AND next_attempt_at <= ?1)
            ORDER BY id
            """, [.int(now + dueWithin)]
        ) { row in
            let what = "\(row.text(1)) row" + (row.optionalInt(2).map { " of job \($0)" } ?? "")
            let why =
                switch OutboxState(rawValue: row.text(3)) {
                case .delivered: "delivered, with no delivery time"
                case .dead: "dead, with no reason recorded"
                case .pending, .delivering, nil:
                    "\(row.text(3)), next attempt at \(Clock.rfc3339(row.int(4))): not due within \(dueWithin) s"
                }
            found.append(("outbox/\(row.int(0))", "\(what) \(why)"))
        }
        _ = try db.query(
            """
            SELECT j.id FROM jobs j WHERE j.state = 'dispatching' AND NOT EXISTS (
              SELECT 1 FROM outbox o
              WHERE o.job_id = j.id AND o.kind = 'dispatch' AND o.state IN ('pending', 'delivering'))
            ORDER BY j.id
            """
        ) { row in
            found.append(("job/\(row.int(0))", "dispatching with no dispatch row left to deliver"))
        }
        return found
    }
}
