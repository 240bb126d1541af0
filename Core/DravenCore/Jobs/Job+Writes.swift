/// Every write to the `jobs` table, each named for what it records. The state machine creates
/// jobs and moves their state and sha (`StateMachine`: only it calls `insert`, `setState` and
/// `setSha`); the others record facts about a job's run that move no state: the provider's
/// (`recordRun`, `recordProviderFacts`), the runner's (`recordHeartbeat`, `recordResult`).
/// Each runs in its caller's transaction.
extension Job {
    /// A new job in `pending`. Returns its id.
    static func insert(_ tx: Transaction, _ new: StateMachine.NewJob, now: Int64) throws -> Int64 {
        try tx.db.run(
            """
            INSERT INTO jobs (kind, project_id, environment_id, ref, ref_kind, sha, reason, state, requested_by,
                              policy_version, parent_job_id, idempotency_key, request_digest, created_at, updated_at,
                              to_release, traceparent)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15)
            """,
            [
                .text(new.kind.rawValue), .int(new.projectID), .int(new.environmentID), .text(new.ref.qualified),
                .text(new.ref.kind.rawValue), .text(new.sha), .text(new.reason), .int(new.requestedBy),
                .int(new.policyVersion), .int(new.parentJobID), .text(new.idempotencyKey), .text(new.requestDigest),
                .int(now), .int(new.toRelease), .text(new.traceparent),
            ])
        return tx.db.lastInsertRowID
    }

    /// The job's new state; `fencingToken`, when given, is the one it now holds the lock with.
    static func setState(_ tx: Transaction, job: Int64, to state: JobState, fencingToken: Int64?, now: Int64) throws {
        try tx.db.run(
            """
            UPDATE jobs SET state = ?2, updated_at = ?3, fencing_token = coalesce(?4, fencing_token) WHERE id = ?1
            """, [.int(job), .text(state.rawValue), .int(now), .int(fencingToken)])
    }

    /// The commit the job's ref now points at (`StateMachine.moveSha`).
    static func setSha(_ tx: Transaction, job: Int64, sha: String, now: Int64) throws {
        try tx.db.run("UPDATE jobs SET sha = ?2, updated_at = ?3 WHERE id = ?1", [.int(job), .text(sha), .int(now)])
    }

    /// The run the provider started for the dispatch (`Delivery`), when it said.
    static func recordRun(_ tx: Transaction, job: Int64, runID: String?, url: String?) throws {
        try tx.db.run(
            "UPDATE jobs SET run_id = coalesce(?2, run_id), run_url = coalesce(?3, run_url) WHERE id = ?1",
            [.int(job), .text(runID), .text(url)])
    }

    /// What a provider event said about the job's run (`RunEvents.apply`): the run's id, URL and
    /// sha where the job has none yet, and that the provider spoke now (sweep polls silent runs).
    static func recordProviderFacts(
        _ tx: Transaction, job: Int64, runKey: String?, url: String?, sha: String?,
        now: Int64
    ) throws {
        try tx.db.run(
            """
            UPDATE jobs SET run_id = coalesce(run_id, ?2), run_url = coalesce(run_url, ?3), provider_seen_at = ?4,
                            sha = coalesce(sha, ?5)
            WHERE id = ?1
            """, [.int(job), .text(runKey), .text(url), .int(now), .text(sha)])
    }

    /// A heartbeat from the job's runner (`progress`: JSON text, or nil to keep the last).
    /// - Returns: the job's state (its raw value), or nil when there is no such job.
    package static func recordHeartbeat(
        _ tx: Transaction, job: Int64, progress: String?,
        now: Int64
    ) throws -> String? {
        try tx.db.first(
            """
            UPDATE jobs SET heartbeat_at = ?2, progress = coalesce(?3, progress) WHERE id = ?1 RETURNING state
            """, [.int(job), .int(now), .text(progress)]
        ) { $0.text(0) }
    }

    /// The runner's final report (`/hooks/runner`): its log and the release it made, when given.
    package static func recordResult(_ tx: Transaction, job: Int64, logURL: String?, releaseID: String?) throws {
        try tx.db.run(
            """
            UPDATE jobs SET log_url = coalesce(?2, log_url), release_id = coalesce(?3, release_id) WHERE id = ?1
            """, [.int(job), .text(logURL), .text(releaseID)])
    }
}
