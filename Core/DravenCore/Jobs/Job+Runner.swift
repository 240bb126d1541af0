/// The `jobs` writes the runner's own reports make (a heartbeat's progress, a callback's log
/// and release links), moved out of the `heartbeat` and `webhook-receive` handlers as they
/// were. They change no state; the state machine's file is where every `jobs` write ends up.
extension Job {
    /// Records a heartbeat's time and progress (kept when it carries none).
    /// - Returns: the job's state, or nil when there is no such job.
    package static func recordHeartbeat(_ tx: Transaction, id: Int64, progress: String?, now: Int64) throws -> String? {
        try tx.db.first("""
            UPDATE jobs SET heartbeat_at = ?2, progress = coalesce(?3, progress) WHERE id = ?1 RETURNING state
            """, [.int(id), .int(now), .text(progress)]) { $0.text(0) }
    }

    /// Records the log URL and release id a runner reported (each kept when not given).
    package static func recordRunnerLinks(_ tx: Transaction, id: Int64, logURL: String?, releaseID: String?) throws {
        try tx.db.run("""
            UPDATE jobs SET log_url = coalesce(?2, log_url), release_id = coalesce(?3, release_id) WHERE id = ?1
            """, [.int(id), .text(logURL), .text(releaseID)])
    }
}
