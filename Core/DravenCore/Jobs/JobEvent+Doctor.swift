extension JobEvent {
    /// The events that move or name a job's state (`created`, `transition`, `ignored`) of every
    /// job, job by job and oldest first, with the job's current state; a job with no such event is
    /// passed once with `event` nil. One pass over the `job_events_job` index (`draven doctor`).
    package typealias StateEvent = (event: String, from: String?, to: String?)

    package static func eachStateEvent(
        _ db: Database, _ body: (_ job: Int64, _ state: String, _ event: StateEvent?) throws -> Void
    ) throws {
        _ = try db.query(
            """
            SELECT j.id, j.state, e.event, e.from_state, e.to_state FROM jobs j
            LEFT JOIN job_events e ON e.job_id = j.id AND e.event IN ('created', 'transition', 'ignored')
            ORDER BY j.id, e.id
            """
        ) { row in
            let event: StateEvent? = row.isNull(2) ? nil : (row.text(2), row.optionalText(3), row.optionalText(4))
            try body(row.int(0), row.text(1), event)
        }
    }
}
