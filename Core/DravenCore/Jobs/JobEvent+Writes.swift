/// The one write to the `job_events` table: an entry of a job's history (`StateMachine` writes
/// them: `created`, `transition`, `ignored`, and the notes of what happened to a job).
extension JobEvent {
    static func record(
        _ tx: Transaction, job: Int64, event: String, from: JobState?, to: JobState?, actor: String,
        detail: JSONObject, now: Int64
    ) throws {
        try tx.db.run(
            """
            INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """,
            [
                .int(job), .int(now), .text(event), .text(from?.rawValue), .text(to?.rawValue), .text(actor),
                .text(JSON.object(detail).serialized()),
            ])
    }
}
