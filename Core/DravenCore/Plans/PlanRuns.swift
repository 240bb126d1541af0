/// Owns the `plan_runs`, `plan_steps`, `plan_step_votes` and `plan_run_environments` tables: the
/// runs of deploy plans, one row per step, votes on approval steps, and the release each
/// environment had before a run first deployed to it. Its reads and writes only; what a run
/// decides is `PlanEngine`'s.
package enum PlanRuns {
    package enum Status: String, Sendable, CaseIterable {
        case running, paused, failed, succeeded, compensating, compensated
        case compensationFailed = "compensation_failed"
        case cancelled

        /// Nothing more happens to the run (a paused or failed run can still be retried: see `PlanEngine.retry`).
        package var isEnded: Bool { ![.running, .paused, .compensating].contains(self) }
    }

    package enum StepStatus: String, Sendable, CaseIterable {
        case pending, running, retrying, succeeded, failed
        case timedOut = "timed_out"
        case skipped, cancelled

        package var isEnded: Bool { ![.pending, .running, .retrying].contains(self) }
        /// A step ended and stopped the run (or would have): what a manual retry starts again.
        package var isFailure: Bool { [.failed, .timedOut, .cancelled].contains(self) }
    }

    /// What compensation did to a step.
    package enum Compensation: String, Sendable {
        /// Its rollback job is under way.
        case running
        case compensated
        /// The environment has the release it had before the run: nothing to undo.
        case unchanged
        case failed
    }

    package struct Run: Sendable, Equatable {
        package var id: Int64
        package var plan: Plan
        package var status: Status
        package var inputs: JSONObject
        package var reason: String
        package var startedBy: Int64
        package var startedByHandle: String
        package var startedAt: Int64
        package var progressedAt: Int64
        package var endedAt: Int64?
        package var detail: JSONObject
        /// In the plan's document order.
        package var steps: [Step]
        /// The W3C trace context of the request that started the run (`TraceContext`): its jobs keep it.
        package var traceparent: String? = nil

        package func index(_ step: String) -> Int? { steps.firstIndex { $0.id == step } }
    }

    package struct Step: Sendable, Equatable {
        package var id: String
        package var position: Int
        package var status: StepStatus = .pending
        package var attempts = 0
        package var budgetFrom = 0
        package var jobID: Int64?
        package var startedAt: Int64?
        package var attemptAt: Int64?
        package var completedAt: Int64?
        package var dueAt: Int64?
        package var deadlineAt: Int64?
        package var cause: String?
        package var reason = ""
        package var outputs: JSONObject = [:]
        package var okSince: Int64?
        package var compensation: Compensation?
        package var compensationJob: Int64?

        package init(id: String, position: Int) {
            self.id = id
            self.position = position
        }
    }

    // MARK: - runs

    /// Writes a new run of `plan` (status `running`, every step `pending`). Returns its id.
    static func insert(
        _ tx: Transaction, plan: Plan, inputs: JSONObject, reason: String, startedBy: Int64, idempotencyKey: String?,
        digest: String?, now: Int64
    ) throws -> Int64 {
        let id =
            try tx.db.first(
                """
                INSERT INTO plan_runs (plan_id, plan_version, plan, status, inputs, reason, started_by, idempotency_key,
                                       request_digest, started_at, progressed_at, traceparent)
                VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) RETURNING id
                """,
                [
                    .text(plan.id), .int(plan.version), .text(plan.snapshot.serialized()),
                    .text(JSON.object(inputs).serialized()), .text(reason), .int(startedBy), .text(idempotencyKey),
                    .text(digest), .int(now), .text(tx.db.traceparent),
                ]
            ) { $0.int(0) } ?? 0
        for (position, step) in plan.steps.enumerated() {
            try tx.db.run(
                "INSERT INTO plan_steps (run_id, step_id, position, status) VALUES (?1, ?2, ?3, 'pending')",
                [.int(id), .text(step.id), .int(Int64(position))])
        }
        return id
    }

    /// The run started by `person` with idempotency key `key`, and the digest of its request.
    static func idempotent(_ db: Database, startedBy person: Int64, key: String) throws -> (id: Int64, digest: String)?
    {
        try db.first(
            "SELECT id, request_digest FROM plan_runs WHERE started_by = ?1 AND idempotency_key = ?2",
            [.int(person), .text(key)]
        ) { ($0.int(0), $0.optionalText(1) ?? "") }
    }

    private static let runColumns = """
        SELECT r.id, r.plan, r.status, r.inputs, r.reason, r.started_by, pe.handle, r.started_at, r.progressed_at,
               r.ended_at, r.detail, r.traceparent
        FROM plan_runs r JOIN people pe ON pe.id = r.started_by
        """

    private static func runRow(_ s: Statement) throws -> Run {
        Run(
            id: s.int(0), plan: try Plan(snapshot: try JSON.parse(s.text(1))),
            status: Status(rawValue: s.text(2)) ?? .failed, inputs: (try? JSON.parse(s.text(3)))?.objectValue ?? [:],
            reason: s.text(4), startedBy: s.int(5), startedByHandle: s.text(6), startedAt: s.int(7),
            progressedAt: s.int(8), endedAt: s.optionalInt(9),
            detail: (try? JSON.parse(s.text(10)))?.objectValue ?? [:], steps: [], traceparent: s.optionalText(11))
    }

    /// The run `id` with its steps.
    package static func find(_ db: Database, id: Int64) throws -> Run? {
        guard var run = try db.first(runColumns + " WHERE r.id = ?1", [.int(id)], runRow) else { return nil }
        run.steps = try db.query(
            """
            SELECT step_id, position, status, attempts, budget_from, job_id, started_at, attempt_at, completed_at,
                   due_at, deadline_at, cause, reason, outputs, ok_since, compensation, compensation_job
            FROM plan_steps WHERE run_id = ?1 ORDER BY position
            """, [.int(id)]
        ) { s in
            var step = Step(id: s.text(0), position: Int(s.int(1)))
            step.status = StepStatus(rawValue: s.text(2)) ?? .failed
            step.attempts = Int(s.int(3))
            step.budgetFrom = Int(s.int(4))
            step.jobID = s.optionalInt(5)
            step.startedAt = s.optionalInt(6)
            step.attemptAt = s.optionalInt(7)
            step.completedAt = s.optionalInt(8)
            step.dueAt = s.optionalInt(9)
            step.deadlineAt = s.optionalInt(10)
            step.cause = s.optionalText(11)
            step.reason = s.text(12)
            step.outputs = (try? JSON.parse(s.text(13)))?.objectValue ?? [:]
            step.okSince = s.optionalInt(14)
            step.compensation = s.optionalText(15).flatMap(Compensation.init(rawValue:))
            step.compensationJob = s.optionalInt(16)
            return step
        }
        return run
    }

    /// - Throws: `.notFound` when there is no run `id`.
    package static func require(_ db: Database, id: Int64) throws -> Run {
        guard let run = try find(db, id: id) else { throw DravenError.notFound(what: "no plan run \(id)") }
        return run
    }

    /// Writes what changed between `original` (as read) and `run`: the run row, and each step that differs.
    static func save(_ tx: Transaction, _ run: Run, from original: Run) throws {
        if run.status != original.status || run.progressedAt != original.progressedAt || run.endedAt != original.endedAt
            || run.detail != original.detail
        {
            try tx.db.run(
                "UPDATE plan_runs SET status = ?2, progressed_at = ?3, ended_at = ?4, detail = ?5 WHERE id = ?1",
                [
                    .int(run.id), .text(run.status.rawValue), .int(run.progressedAt), .int(run.endedAt),
                    .text(JSON.object(run.detail).serialized()),
                ])
        }
        for (step, old) in zip(run.steps, original.steps) where step != old {
            try tx.db.run(
                """
                UPDATE plan_steps SET status = ?3, attempts = ?4, budget_from = ?5, job_id = ?6, started_at = ?7,
                  attempt_at = ?8, completed_at = ?9, due_at = ?10, deadline_at = ?11, cause = ?12, reason = ?13,
                  outputs = ?14, ok_since = ?15, compensation = ?16, compensation_job = ?17
                WHERE run_id = ?1 AND step_id = ?2
                """,
                [
                    .int(run.id), .text(step.id), .text(step.status.rawValue), .int(Int64(step.attempts)),
                    .int(Int64(step.budgetFrom)), .int(step.jobID), .int(step.startedAt), .int(step.attemptAt),
                    .int(step.completedAt), .int(step.dueAt), .int(step.deadlineAt), .text(step.cause),
                    .text(step.reason), .text(JSON.object(step.outputs).serialized()), .int(step.okSince),
                    .text(step.compensation?.rawValue), .int(step.compensationJob),
                ])
        }
    }

    /// Runs, newest first: with `status`, only those; `stuckBefore` keeps the running ones that
    /// progressed last before it, or have a step past its deadline at `now`.
    package static func list(_ db: Database, status: Status?, stuckBefore: Int64?, now: Int64, limit: Int) throws
        -> [Run]
    {
        let ids = try db.query(
            """
            SELECT r.id FROM plan_runs r WHERE (?1 IS NULL OR r.status = ?1)
              AND (?2 IS NULL OR (r.status = 'running' AND (r.progressed_at < ?2 OR EXISTS (
                   SELECT 1 FROM plan_steps s WHERE s.run_id = r.id AND s.status = 'running' AND s.deadline_at < ?3))))
            ORDER BY r.id DESC LIMIT ?4
            """, [.text(status?.rawValue), .int(stuckBefore), .int(now), .int(Int64(limit))]
        ) { $0.int(0) }
        return try ids.compactMap { try find(db, id: $0) }
    }

    /// The newest `limit` runs of plan `plan` (any version), newest first.
    package static func recent(_ db: Database, plan: String, limit: Int) throws -> [Run] {
        let ids = try db.query(
            "SELECT id FROM plan_runs WHERE plan_id = ?1 ORDER BY id DESC LIMIT ?2", [.text(plan), .int(Int64(limit))]
        ) { $0.int(0) }
        return try ids.compactMap { try find(db, id: $0) }
    }

    // MARK: - what finds a run

    /// The run and step whose current attempt is job `job` (a step `running` on it).
    static func step(_ db: Database, runningJob job: Int64) throws -> (run: Int64, step: String)? {
        try db.first(
            "SELECT run_id, step_id FROM plan_steps WHERE job_id = ?1 AND status = 'running'", [.int(job)]
        ) { ($0.int(0), $0.text(1)) }
    }

    /// The run and step whose compensation is job `job`, under way.
    static func step(_ db: Database, compensationJob job: Int64) throws -> (run: Int64, step: String)? {
        try db.first(
            "SELECT run_id, step_id FROM plan_steps WHERE compensation_job = ?1 AND compensation = 'running'",
            [.int(job)]
        ) { ($0.int(0), $0.text(1)) }
    }

    /// Steps whose timer is due at `now` (a wait's end, a retry, a check to send, a deadline), of
    /// runs still going, oldest first.
    static func due(_ db: Database, now: Int64, limit: Int = 500) throws -> [(run: Int64, step: String)] {
        try db.query(
            """
            SELECT s.run_id, s.step_id FROM plan_steps s JOIN plan_runs r ON r.id = s.run_id
            WHERE s.status IN ('running', 'retrying') AND r.status IN ('running', 'compensating', 'paused', 'failed')
              AND (s.due_at <= ?1 OR s.deadline_at <= ?1)
            ORDER BY s.run_id, s.position LIMIT ?2
            """, [.int(now), .int(Int64(limit))]
        ) { ($0.int(0), $0.text(1)) }
    }

    // MARK: - votes

    /// Records `person`'s vote on an approval step. Returns false when they had voted already.
    static func vote(
        _ tx: Transaction, run: Int64, step: String, person: Int64, decision: String, comment: String, now: Int64
    ) throws -> Bool {
        try tx.db.run(
            """
            INSERT INTO plan_step_votes (run_id, step_id, person_id, decision, comment, at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING
            """, [.int(run), .text(step), .int(person), .text(decision), .text(comment), .int(now)])
        return tx.db.changes > 0
    }

    package struct Vote: Sendable, Equatable {
        package var person: String
        package var decision: String
        package var comment: String
        package var at: Int64
    }

    /// The votes on a step, oldest first.
    package static func votes(_ db: Database, run: Int64, step: String) throws -> [Vote] {
        try db.query(
            """
            SELECT pe.handle, v.decision, v.comment, v.at FROM plan_step_votes v JOIN people pe ON pe.id = v.person_id
            WHERE v.run_id = ?1 AND v.step_id = ?2 ORDER BY v.at, pe.handle
            """, [.int(run), .text(step)]
        ) { Vote(person: $0.text(0), decision: $0.text(1), comment: $0.text(2), at: $0.int(3)) }
    }

    // MARK: - environments

    /// Remembers the release live on `environment` before the run first deploys to it (once: a
    /// later step on the same environment keeps the first).
    static func touch(_ tx: Transaction, run: Int64, environment: Int64, releaseBefore: Int64?, now: Int64) throws {
        try tx.db.run(
            """
            INSERT INTO plan_run_environments (run_id, environment_id, release_before, touched_at)
            VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING
            """, [.int(run), .int(environment), .int(releaseBefore), .int(now)])
    }

    /// The release live on `environment` before the run first touched it: nil when it did not
    /// touch it; `.some(nil)` when the environment had no release then.
    static func releaseBefore(_ db: Database, run: Int64, environment: Int64) throws -> Int64?? {
        try db.first(
            "SELECT release_before FROM plan_run_environments WHERE run_id = ?1 AND environment_id = ?2",
            [.int(run), .int(environment)]
        ) { $0.optionalInt(0) }
    }

    // MARK: - metrics

    /// How many runs are in each status.
    package static func statusCounts(_ db: Database) throws -> [(status: String, count: Int64)] {
        try db.query("SELECT status, count(*) FROM plan_runs GROUP BY status ORDER BY status") {
            ($0.text(0), $0.int(1))
        }
    }

    /// Steps whose last attempt failed (ended failed or timed out, or waiting to retry), by cause.
    package static func failureCounts(_ db: Database) throws -> [(cause: String, count: Int64)] {
        try db.query(
            """
            SELECT cause, count(*) FROM plan_steps WHERE cause IS NOT NULL
              AND status IN ('failed', 'timed_out', 'retrying') GROUP BY cause ORDER BY cause
            """
        ) { ($0.text(0), $0.int(1)) }
    }

    /// A histogram of durations (s): of ended runs (`steps` false: start to end) or of succeeded
    /// steps (their last attempt): how many are at most each of `bounds`, how many in all, their sum.
    package static func durations(_ db: Database, steps: Bool, bounds: [Int64]) throws
        -> (buckets: [Int64], count: Int64, sum: Int64)
    {
        let source =
            steps
            ? """
            SELECT completed_at - attempt_at AS d FROM plan_steps WHERE status = 'succeeded' AND attempt_at IS NOT NULL
            """
            : "SELECT ended_at - started_at AS d FROM plan_runs WHERE ended_at IS NOT NULL"
        let sums = bounds.enumerated().map { "coalesce(sum(d <= ?\($0.offset + 1)), 0)" }.joined(separator: ", ")
        return try db.first(
            "SELECT \(sums), count(*), coalesce(sum(d), 0) FROM (\(source))", bounds.map { .int($0) }
        ) { row in
            (bounds.indices.map { row.int(Int32($0)) }, row.int(Int32(bounds.count)), row.int(Int32(bounds.count + 1)))
        } ?? (bounds.map { _ in 0 }, 0, 0)
    }

    // MARK: - estimates

    /// The mean duration (s) of each step of plan `plan` that succeeded in earlier runs.
    package static func meanDurations(_ db: Database, plan: String) throws -> [String: Int64] {
        let rows = try db.query(
            """
            SELECT s.step_id, CAST(avg(s.completed_at - s.attempt_at) AS INTEGER) FROM plan_steps s
            JOIN plan_runs r ON r.id = s.run_id
            WHERE r.plan_id = ?1 AND s.status = 'succeeded' AND s.attempt_at IS NOT NULL
            GROUP BY s.step_id
            """, [.text(plan)]
        ) { ($0.text(0), $0.int(1)) }
        return Dictionary(rows, uniquingKeysWith: { a, _ in a })
    }
}
