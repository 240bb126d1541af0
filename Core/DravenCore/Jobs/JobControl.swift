/// The checks of the job-control routes (`rollback`: cancel a job, roll back a job or an
/// environment), decided here so that the API and the console, which shows why a button is not
/// there, decide alike. Each throws what the route answers; none writes.
package enum JobControl {
    /// Whether `principal` may cancel `job` now: the grant that starts a job of its kind
    /// (`JobKind.grant`: `deploy` for a deploy, `rollback` for a rollback or diagnostic), and a
    /// job that has not ended. The route checks the state again under the write lock.
    /// - Throws: `.notFound` (no read grant), `.forbidden`, `.conflict` (the job has ended).
    package static func checkCancel(_ db: Database, _ principal: Principal, job: Job) throws {
        try Grants.require(db, principal, job.kind.grant, job: job)
        try checkOpen(job)
    }

    /// - Throws: `.conflict` when `job` has ended.
    package static func checkOpen(_ job: Job) throws {
        guard !job.state.isTerminal else {
            throw DravenError.conflict("job \(job.id) is \(job.state.rawValue); it has already ended")
        }
    }

    /// Cancels job `id` (it must not have ended: checked here, under the write lock) and asks the
    /// provider to stop its run through the outbox, after the commit. What `POST
    /// /api/v1/jobs/{id}/cancel` does, and a plan step's timeout.
    /// - Throws: `.conflict` (the job has ended).
    package static func cancel(_ tx: Transaction, job id: Int64, actor: String, detail: JSONObject, now: Int64) throws {
        let current = try Job.require(tx.db, id: id)
        try checkOpen(current)
        try StateMachine.transition(tx, job: id, to: .cancelled, actor: actor, detail: detail, now: now)
        // A run the provider started is asked to stop; a dispatch still in flight is stopped when its answer comes.
        if current.state.holdsLock, let run = current.runID {
            try Outbox.enqueue(
                tx, kind: .cancel, job: id, payload: ["job_id": .int(id), "run_id": .string(run)], now: now)
        }
    }

    /// Where rolling back `job` goes (`POST /api/v1/jobs/{id}/rollback`): the release live before
    /// it — before its release if it made one, else the one live now.
    /// - Throws: `.notFound` (no read grant), `.forbidden` (no `rollback` grant), `.conflict` (a
    ///   diagnostic job, or no release before it).
    package static func rollbackTarget(_ db: Database, _ principal: Principal, job: Job) throws -> Releases.Release {
        try Grants.require(db, principal, .rollback, job: job)
        guard job.kind.isRelease else {
            throw DravenError.conflict("job \(job.id) is a \(job.kind.rawValue) job; it changed nothing to roll back")
        }
        guard let release = try Releases.before(db, environment: job.environmentID, job: job.id) else {
            let environment = "\(job.project)/\(job.environment)"
            throw DravenError.conflict("\(environment) has no release before job \(job.id) to roll back to")
        }
        return release
    }

    /// An environment's rollback as `POST /api/v1/rollbacks` checks it before naming a release:
    /// the environment, the `rollback` grant, and a live release (whose job the rollback is modelled on).
    /// - Throws: `.notFound` (no such environment), `.forbidden`, `.conflict` (no release history).
    package static func environmentRollback(
        _ db: Database, _ principal: Principal, project: String, environment: String
    ) throws -> (target: Target, live: Releases.Release) {
        let target = try Target.find(db, project: project, environment: environment)
        try Grants.require(db, principal, .rollback, project: project, environment: environment)
        guard let live = try Releases.live(db, environment: target.environmentID) else {
            throw DravenError.conflict("\(project)/\(environment) has no release history to roll back in")
        }
        return (target, live)
    }

    /// The release an environment's rollback goes to: the one `named` (a release's id, its
    /// job's `release_id`, ref or sha), or the one before the live release.
    /// - Throws: `.invalidField` (`/to_release`: no such release), `.conflict` (none before the live one).
    package static func rollbackRelease(
        _ db: Database, project: String, environment: String, environmentID: Int64, named: String?
    ) throws -> Releases.Release {
        if let named {
            guard let found = try Releases.find(db, environment: environmentID, name: named) else {
                throw DravenError.invalidField(
                    pointer: "/to_release", reason: "\(project)/\(environment) has no release \(named) in its history")
            }
            return found
        }
        guard let previous = try Releases.previous(db, environment: environmentID) else {
            throw DravenError.conflict("\(project)/\(environment) has no release before the live one to roll back to")
        }
        return previous
    }

    /// What creating a rollback job of `environment` now would be refused with once the checks
    /// above passed (`Recovery.rollback`, `queueWhenBusy` false): a busy environment whose policy
    /// rejects, unless the rollback waits for approvals first. Nil when it would go ahead.
    package static func rollbackStartRefusal(_ db: Database, environment: String, environmentID: Int64, policy: Policy)
        throws -> DravenError?
    {
        guard !Recovery.waitsForApprovals(policy) else { return nil }
        guard let holder = try Locks.holder(db, environment: environmentID) else { return nil }
        return StateMachine.busyRefusal(environment: environment, holder: holder, policy: policy)
    }
}
