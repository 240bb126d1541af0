/// The time-driven work of one `draven sweep` pass, except delivering the outbox (which needs
/// libcurl, so the CLI does it after this): expire unapproved jobs, time out running jobs whose
/// lease ran out, fail jobs stuck in `dispatching`, queue a `poll` of runs the provider has
/// been silent about, run the timers of plan runs (`PlanEngine.sweep`: waits, retries, checks,
/// timeouts), prune archived logs older than `logs.retention` (`JobLogs.prune`), compress the log
/// chunks stored since the last pass into the store (`JobLogs.compact`) and remove the spool files
/// of ended jobs (`JobLogs.releaseSpools`).
///
/// Idempotent and safe alongside itself and requests: each job is handled in its own
/// `BEGIN IMMEDIATE` transaction that first checks, under the write lock, that the condition
/// still holds — of two sweeps, the second finds the job already moved (or the poll already
/// queued) and does nothing.
package struct Sweeper {
    /// Poll a running job's run when the provider has said nothing about it for this long (s).
    package var pollAfter: Int64 = 300
    /// Fail a `dispatching` job after this long (s) when no dispatch of it is still pending.
    package var dispatchLimit: Int64 = 900
    /// The longest wait (s) between polls the provider keeps refusing (see `queuePolls`); never
    /// less than `pollAfter`.
    package var pollBackoffLimit: Int64 = 3600

    package init(pollAfter: Int64 = 300, dispatchLimit: Int64 = 900, pollBackoffLimit: Int64 = 3600) {
        self.pollAfter = pollAfter
        self.dispatchLimit = dispatchLimit
        self.pollBackoffLimit = pollBackoffLimit
    }

    package struct Report: Sendable {
        package var expired: [Int64] = []
        package var timedOut: [Int64] = []
        package var stuck: [Int64] = []
        package var polled: [Int64] = []
        /// Jobs whose archived logs passed the retention period and were removed.
        package var logsPruned: [Int64] = []
        /// What plan runs' timers did (`PlanEngine.sweep`).
        package var plans: [String] = []

        package var summary: String? {
            let parts =
                [
                    ("expired", expired), ("timed out", timedOut), ("failed in dispatching", stuck),
                    ("polling", polled),
                    ("pruned the logs of", logsPruned),
                ]
                .filter { !$0.1.isEmpty }.map { "\($0.0) \($0.1.map { "#\($0)" }.joined(separator: " "))" } + plans
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }
    }

    package func run(_ db: Database, now: Int64) throws -> Report {
        var report = Report()
        report.expired = try Approvals.expireDue(db, now: now)
        report.timedOut = try expireLeases(db, now: now)
        report.stuck = try failStuckDispatches(db, now: now)
        report.polled = try queuePolls(db, now: now)
        report.plans = try PlanEngine.sweep(db, now: now)
        report.logsPruned = try JobLogs.prune(db, now: now)
        try JobLogs.compact(db)
        try JobLogs.releaseSpools(db)
        try RefusalCounts.prune(db, now: now)
        try Deliveries.forgetOldSlackSignatures(db, now: now)
        return report
    }

    /// Running jobs whose lease ran out (no heartbeat) → `timed_out`: the lock is freed in the same
    /// transaction, the failure policy applies, the next queued job starts.
    package func expireLeases(_ db: Database, now: Int64) throws -> [Int64] {
        try Locks.expired(db, now: now).filter { holder in
            try db.immediate { tx -> Bool in
                guard let (until, beat) = try Locks.lapsed(tx.db, holder, now: now) else { return false }
                try StateMachine.transition(
                    tx, job: holder.jobID, to: .timedOut, actor: "draven sweep",
                    detail: [
                        "reason": "no heartbeat: the lease ran out", "lease_until": .string(Clock.rfc3339(until)),
                        "last_heartbeat": beat.map { .string(Clock.rfc3339($0)) } ?? .null,
                        "fencing_token": .int(holder.token),
                    ], now: now)
                return true
            }
        }.map(\.jobID)
    }

    /// `dispatching` jobs older than `dispatchLimit` with no dispatch row left to deliver (its
    /// attempts ran out, or it was lost) → `failed`. One still pending is being retried by the
    /// outbox with its backoff, and is left alone.
    package func failStuckDispatches(_ db: Database, now: Int64) throws -> [Int64] {
        let due = try Job.stuckDispatching(db, updatedBefore: now - dispatchLimit)
        return try due.filter { id in
            try db.immediate { tx -> Bool in
                // The re-check under the write lock.
                let still = try Job.stuckDispatching(tx.db, job: id, updatedBefore: now - dispatchLimit)
                guard !still.isEmpty else { return false }
                try StateMachine.transition(
                    tx, job: id, to: .failed, actor: "draven sweep",
                    detail: [
                        "reason": .string(
                            "stuck in dispatching for more than \(dispatchLimit) s with no dispatch left to deliver")
                    ], now: now)
                return true
            }
        }
    }

    /// Running jobs with a known run and no word from the provider for `pollAfter` → one `poll`
    /// row each (delivered by this sweep right after; never two pending for a job). A poll that
    /// answers (the run is still going, or ended) counts as word from the provider, so the next
    /// comes a full `pollAfter` later: one poll per silence period.
    ///
    /// A poll that ends dead (refused: 401/403/404, an unreadable answer, or retryable failures
    /// that used up the outbox's attempts and backoff) is noted once in the job's history by the
    /// deliverer, and backs off: after n such polls since the provider last spoke, the next is
    /// due min(pollAfter · 2ⁿ, max(pollAfter, pollBackoffLimit)) after the last one; a webhook
    /// (or any answer) from the provider starts the count again. Runs of integrations draven
    /// cannot poll (`RunControl.refusal`) are never polled. Either way the lease still ends the job.
    package func queuePolls(_ db: Database, now: Int64) throws -> [Int64] {
        // `job`: one job (the re-check under the write lock), or nil for all.
        let silent = { (db: Database, job: Int64?) in
            try Job.silentRuns(
                db, job: job, silentSince: now - pollAfter, pollAfter: pollAfter,
                backoffLimit: max(pollAfter, pollBackoffLimit), now: now)
        }
        let due = try silent(db, nil).map { run in
            (
                run.id, run.runID,
                Provider(rawValue: run.provider).flatMap {
                    RunControl.refusal(
                        provider: $0, method: run.method,
                        integration: (try? JSON.parse(run.integration))?.objectValue ?? [:])
                }
            )
        }
        return try due.filter { (id, run, refusal) in
            guard refusal == nil else { return false }
            return try db.immediate { tx -> Bool in
                guard try !silent(tx.db, id).isEmpty else { return false }
                try Outbox.enqueue(
                    tx, kind: .poll, job: id, payload: ["job_id": .int(id), "run_id": .string(run)], now: now)
                return true
            }
        }.map(\.0)
    }
}
