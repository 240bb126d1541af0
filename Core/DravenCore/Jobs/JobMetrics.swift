/// Owns `job_totals` and `job_metrics`: what `/metrics` says about jobs that ended, kept per
/// environment as the jobs end. An ended job never changes, so each is added once, by the move
/// that ends it (`Transition.CountMetrics`), and a scrape reads a few rows per environment instead
/// of the whole history (a prototype of those histograms as SQL aggregates over 100k jobs took ~130 ms
/// of CPU; the whole scrape of such a store now takes ~5 ms, `make bench-metrics`).
///
/// Histograms are kept per bucket (`le` its upper bound in seconds, `Int64.max` for +Inf; counts not
/// cumulative: `Metrics` adds them up); plain counters are rows with `le` 0.
package enum JobMetrics {
    /// A histogram kept per environment, and its buckets' upper bounds (s).
    package enum Histogram: String, CaseIterable, Sendable {
        /// A deploy's run: from its dispatch (the lock taken) to its end.
        case deployDuration = "deploy_duration"
        /// How long a job waited for its environment's lock: from entering `queued` to its dispatch
        /// (0 for a job that found the lock free).
        case queueWait = "queue_wait"
        /// How long any job (deploy, rollback, diagnostic) held the lock: dispatch to end.
        case lockHeld = "lock_held"
        /// DORA lead time for changes: a succeeded deploy's commit time (from the provider's push)
        /// to the moment it went live.
        case leadTime = "lead_time"
        /// DORA time to restore: from a failed change (the first failed or timed-out deploy since the
        /// last success, or a rollback's request) to the success that ended it.
        case restore

        package var bounds: [Int64] {
            switch self {
            case .deployDuration, .lockHeld: [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600]
            case .queueWait: [1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400]
            case .leadTime: [300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800, 604800, 2_592_000]
            case .restore: [60, 300, 900, 1800, 3600, 10800, 21600, 86400, 604800]
            }
        }
    }

    /// A DORA counter kept per environment.
    package enum Counter: String, CaseIterable, Sendable {
        /// Changes that failed: a dispatched deploy that failed or timed out, or a rollback (or
        /// diagnostic) that started, of a deploy that had not failed (or of none: a release found bad
        /// after it went live).
        case changesFailed = "changes_failed"
        /// Successes that restored an environment after a failed change (rework: a rollback, or the
        /// deploy that fixed forward).
        case restores
    }

    /// Adds one observation of `seconds` (at least 0) to `histogram` of `environment`.
    static func observe(_ tx: Transaction, _ histogram: Histogram, environment: Int64, seconds: Int64) throws {
        let value = max(0, seconds)
        let le = histogram.bounds.first { value <= $0 } ?? Int64.max
        try add(tx, environment: environment, name: histogram.rawValue, le: le, sum: value)
    }

    static func count(_ tx: Transaction, _ counter: Counter, environment: Int64) throws {
        try add(tx, environment: environment, name: counter.rawValue, le: 0, sum: 0)
    }

    private static func add(_ tx: Transaction, environment: Int64, name: String, le: Int64, sum: Int64) throws {
        try tx.db.run(
            """
            INSERT INTO job_metrics (environment_id, name, le, count, sum) VALUES (?1, ?2, ?3, 1, ?4)
            ON CONFLICT DO UPDATE SET count = count + 1, sum = sum + excluded.sum
            """, [.int(environment), .text(name), .int(le), .int(sum)])
    }

    /// Counts a job that ended in `state`.
    static func ended(_ tx: Transaction, _ job: Job, state: JobState, dispatched: Bool) throws {
        try tx.db.run(
            """
            INSERT INTO job_totals (environment_id, kind, state, dispatched, count) VALUES (?1, ?2, ?3, ?4, 1)
            ON CONFLICT DO UPDATE SET count = count + 1
            """, [.int(job.environmentID), .text(job.kind.rawValue), .text(state.rawValue), .int(dispatched ? 1 : 0)])
    }

    // MARK: - reads (`/metrics`)

    /// Ended jobs per environment, kind, state and whether dispatched.
    package static func totals(_ db: Database) throws
        -> [(environment: Int64, kind: String, state: String, dispatched: Bool, count: Int64)]
    {
        try db.query("SELECT environment_id, kind, state, dispatched, count FROM job_totals") {
            ($0.int(0), $0.text(1), $0.text(2), $0.int(3) != 0, $0.int(4))
        }
    }

    /// Every histogram bucket and counter row, by environment then name then bound.
    package static func rows(_ db: Database) throws
        -> [(environment: Int64, name: String, le: Int64, count: Int64, sum: Int64)]
    {
        try db.query("SELECT environment_id, name, le, count, sum FROM job_metrics ORDER BY environment_id, name, le") {
            ($0.int(0), $0.text(1), $0.int(2), $0.int(3), $0.int(4))
        }
    }

    /// What is open now in each environment (jobs that have not ended: a few, on the `jobs_state`
    /// index), as of `now`: per environment and state, how many, the oldest's age (from its creation
    /// for approvals, from its last move otherwise), the longest a running job has gone without a
    /// heartbeat (since its dispatch when none came) and, for approvals, the soonest expiry.
    package struct Open: Sendable {
        package var environment: Int64
        package var state: String
        package var count: Int64
        package var oldestAge: Int64
        package var silentFor: Int64
        package var nextExpiry: Int64?
    }

    package static func open(_ db: Database, now: Int64) throws -> [Open] {
        try db.query(
            """
            SELECT j.environment_id, j.state, count(*),
                   max(?1 - CASE j.state WHEN 'awaiting_approval' THEN j.created_at ELSE j.updated_at END),
                   max(CASE j.state WHEN 'running' THEN ?1 - max(coalesce(j.heartbeat_at, 0), j.updated_at) ELSE 0 END),
                   min(CASE j.state WHEN 'awaiting_approval' THEN j.created_at + p.approval_ttl_s - ?1 END)
            FROM jobs j JOIN policies p ON p.environment_id = j.environment_id
            WHERE j.state IN ('pending', 'awaiting_approval', 'queued', 'dispatching', 'running')
            GROUP BY j.environment_id, j.state
            """, [.int(now)]
        ) {
            Open(
                environment: $0.int(0), state: $0.text(1), count: $0.int(2), oldestAge: $0.int(3),
                silentFor: $0.int(4), nextExpiry: $0.optionalInt(5))
        }
    }

    /// Open jobs per environment, kind and state (the same few rows as `open`, by kind).
    package static func openKinds(_ db: Database) throws -> [(Int64, String, String, Int64)] {
        try db.query(
            """
            SELECT environment_id, kind, state, count(*) FROM jobs
            WHERE state IN ('pending', 'awaiting_approval', 'queued', 'dispatching', 'running') GROUP BY 1, 2, 3
            """
        ) { ($0.int(0), $0.text(1), $0.text(2), $0.int(3)) }
    }

    // MARK: - the DORA API (one environment, one window)

    /// An environment's DORA figures over `[since, until]`, from its jobs and releases (one
    /// environment's history: on the `jobs_env_state` and `releases_env` indexes).
    package struct Window: Sendable {
        /// Deploys that went live.
        package var deployments: Int64 = 0
        /// Dispatched deploys that reached an outcome (succeeded, failed, timed out).
        package var changes: Int64 = 0
        /// Of those, failed, timed out, or rolled back (or diagnosed) afterwards.
        package var failedChanges: Int64 = 0
        /// Lead times (s) of the deploys that went live whose commit time is known, ascending.
        package var leadTimes: [Int64] = []
        /// Times to restore (s) of the successes that ended a failed change, ascending.
        package var restores: [Int64] = []
        /// Releases that went live (deploys and rollbacks).
        package var releases: Int64 = 0
    }

    package static func window(_ db: Database, environment: Int64, since: Int64, until: Int64) throws -> Window {
        var w = Window()
        let args: [SQLValue] = [.int(environment), .int(since), .int(until)]
        // Changes: dispatched deploys that ended with an outcome in the window; failed when they failed or a
        // rollback or diagnostic was started from them.
        if let row = try db.first(
            """
            SELECT count(*), coalesce(sum(j.state = 'succeeded'), 0),
                   coalesce(sum(j.state != 'succeeded' OR EXISTS (SELECT 1 FROM jobs c WHERE c.parent_job_id = j.id
                                AND c.kind IN ('rollback', 'diagnostic'))), 0)
            FROM jobs j WHERE j.environment_id = ?1 AND j.kind = 'deploy' AND j.state IN ('succeeded', 'failed',
              'timed_out') AND j.updated_at BETWEEN ?2 AND ?3
            """, args, { ($0.int(0), $0.int(1), $0.int(2)) })
        {
            (w.changes, w.deployments, w.failedChanges) = row
        }
        // Rollbacks of no failed deploy (a release found bad after it went live) are failed changes too.
        w.failedChanges +=
            try db.scalar(
                """
                SELECT count(*) FROM jobs r WHERE r.environment_id = ?1 AND r.kind = 'rollback'
                AND r.created_at BETWEEN ?2 AND ?3 AND r.state NOT IN ('rejected', 'expired')
                AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.id = r.parent_job_id AND p.kind = 'deploy')
                """, args) ?? 0
        w.leadTimes = try db.query(
            """
            SELECT r.live_from - c.committed_at FROM releases r JOIN jobs j ON j.id = r.job_id
            JOIN commits c ON c.project_id = j.project_id AND c.sha = j.sha
            WHERE r.environment_id = ?1 AND j.kind = 'deploy' AND r.live_from BETWEEN ?2 AND ?3 ORDER BY 1
            """, args
        ) { max(0, $0.int(0)) }
        w.releases =
            try db.scalar(
                "SELECT count(*) FROM releases WHERE environment_id = ?1 AND live_from BETWEEN ?2 AND ?3", args) ?? 0
        // A restore: a release that went live after a failed change since the release before it (ordered
        // by the lock's fencing tokens, as `Job.firstFailure` orders them).
        w.restores = try db.query(
            """
            SELECT r.live_from - coalesce(
                (SELECT min(f.updated_at) FROM jobs f WHERE f.environment_id = r.environment_id AND f.kind = 'deploy'
                 AND f.state IN ('failed', 'timed_out') AND f.fencing_token < j.fencing_token
                 AND f.fencing_token > coalesce((SELECT pj.fencing_token FROM releases b
                   JOIN jobs pj ON pj.id = b.job_id WHERE b.environment_id = r.environment_id AND b.id < r.id
                   ORDER BY b.id DESC LIMIT 1), 0)),
                CASE WHEN j.kind = 'rollback' THEN j.created_at END) AS d
            FROM releases r JOIN jobs j ON j.id = r.job_id
            WHERE r.environment_id = ?1 AND r.live_from BETWEEN ?2 AND ?3 AND d IS NOT NULL ORDER BY 1
            """, args
        ) { max(0, $0.int(0)) }
        return w
    }
}

extension Transition {
    /// Keeps `/metrics`' figures of ended jobs (`JobMetrics`): a job's dispatch observes how long it
    /// waited for the lock; its end counts it by final state and observes how long it held the lock
    /// (and, a deploy, how long it ran); a success that went live observes its lead time and, when it
    /// ended a failed change, the time to restore; a failed deploy, or a rollback of one that had not
    /// failed, counts a failed change. After `RecordRelease`, whose row it reads.
    package struct CountMetrics: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            let job = t.job
            let environment = job.environmentID
            if t.to == .dispatching {
                let waited = t.from == .queued ? t.now - job.updatedAt : 0
                try JobMetrics.observe(tx, .queueWait, environment: environment, seconds: waited)
                // A rollback (or diagnostic) that starts, of a job whose failure was not counted: a failed change.
                if job.kind != .deploy, try !JobMetrics.parentCounted(tx.db, job) {
                    try JobMetrics.count(tx, .changesFailed, environment: environment)
                }
            }
            guard t.to.isTerminal else { return }
            let dispatchedAt = t.from.holdsLock ? try JobEvent.enteredAt(tx.db, job: job.id, state: .dispatching) : nil
            try JobMetrics.ended(tx, job, state: t.to, dispatched: dispatchedAt != nil)
            guard let dispatchedAt else { return }
            try JobMetrics.observe(tx, .lockHeld, environment: environment, seconds: t.now - dispatchedAt)
            if job.kind == .deploy {
                try JobMetrics.observe(tx, .deployDuration, environment: environment, seconds: t.now - dispatchedAt)
                if t.to == .failed || t.to == .timedOut {
                    try JobMetrics.count(tx, .changesFailed, environment: environment)
                }
            }
            guard t.to == .succeeded, job.kind.isRelease else { return }
            if job.kind == .deploy, let sha = job.sha,
                let committed = try Commits.committedAt(tx.db, project: job.projectID, sha: sha)
            {
                try JobMetrics.observe(tx, .leadTime, environment: environment, seconds: t.now - committed)
            }
            let lastSuccess = try Releases.previous(tx.db, environment: environment)?.jobID
            let failedSince = try Job.firstFailure(tx.db, environment: environment, after: lastSuccess)
            let start = [failedSince, job.kind == .rollback ? job.createdAt : nil].compactMap { $0 }.min()
            if let start {
                try JobMetrics.observe(tx, .restore, environment: environment, seconds: t.now - start)
                try JobMetrics.count(tx, .restores, environment: environment)
            }
        }
    }
}

extension JobMetrics {
    /// Whether the failed change `job` (a rollback or diagnostic) stands for was counted already:
    /// it was started from a deploy that failed or timed out, or another rollback or diagnostic of
    /// the same job took the lock before it (a release rolled back twice is one failed change, as
    /// `GET /api/v1/dora` counts it).
    static func parentCounted(_ db: Database, _ job: Job) throws -> Bool {
        guard let parent = job.parentJobID else { return false }
        if try Job.state(db, id: parent).map({ $0 == .failed || $0 == .timedOut }) ?? false { return true }
        return try Job.remedyDispatched(db, parent: parent, besides: job.id)
    }
}
