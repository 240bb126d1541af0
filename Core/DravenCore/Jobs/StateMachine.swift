/// The one place where jobs change state. Every function here takes a `Transaction` (callers
/// run inside `Database.immediate`, i.e. `BEGIN IMMEDIATE`), and writes the job row, a job
/// event and an audit record together; what follows a move (the lock, the release, recovery,
/// the queue, messages) is `effects`, run over one `Transition` in the same transaction.
package enum StateMachine {
    package enum Outcome: Equatable, Sendable {
        case moved(from: JobState, to: JobState)
        /// The transition is not allowed from the job's current state (late, duplicate or out
        /// of order). It is recorded as an `ignored` event; nothing else changes.
        case ignored(current: JobState)
    }

    /// What a new job is.
    package struct NewJob: Sendable {
        package var kind = JobKind.deploy
        package var projectID: Int64
        package var environmentID: Int64
        package var ref: GitRef
        package var sha: String?
        package var reason: String
        package var requestedBy: Int64
        package var policyVersion: Int64
        package var parentJobID: Int64?
        package var idempotencyKey: String?
        package var requestDigest: String?
        /// A rollback's target release.
        package var toRelease: Int64?
        /// The W3C trace context the job is part of (`TraceContext`); nil: the request's
        /// (`Database.traceparent`), if it sent one.
        package var traceparent: String?

        package init(
            kind: JobKind = .deploy, projectID: Int64, environmentID: Int64, ref: GitRef, sha: String?,
            reason: String, requestedBy: Int64, policyVersion: Int64, parentJobID: Int64? = nil,
            idempotencyKey: String? = nil, requestDigest: String? = nil
        ) {
            self.kind = kind
            self.projectID = projectID
            self.environmentID = environmentID
            self.ref = ref
            self.sha = sha
            self.reason = reason
            self.requestedBy = requestedBy
            self.policyVersion = policyVersion
            self.parentJobID = parentJobID
            self.idempotencyKey = idempotencyKey
            self.requestDigest = requestDigest
        }

        /// A job of `kind` for the environment `environmentID` on the ref of `job` (recovery jobs).
        init(
            kind: JobKind, like job: Job, ref: GitRef, sha: String?, reason: String, requestedBy: Int64,
            policyVersion: Int64, parentJobID: Int64?, toRelease: Int64?
        ) {
            self.init(
                kind: kind, projectID: job.projectID, environmentID: job.environmentID, ref: ref, sha: sha,
                reason: reason,
                requestedBy: requestedBy, policyVersion: policyVersion, parentJobID: parentJobID)
            self.toRelease = toRelease
            self.traceparent = job.traceparent
        }
    }

    /// Creates a job in `pending`.
    package static func create(_ tx: Transaction, _ new: NewJob, actor: String, subject: String, now: Int64) throws
        -> Int64
    {
        var new = new
        new.traceparent = new.traceparent ?? tx.db.traceparent
        let id = try Job.insert(tx, new, now: now)
        var detail: JSONObject = [
            "kind": .string(new.kind.rawValue), "ref": .string(new.ref.qualified),
            "sha": new.sha.map(JSON.string) ?? .null,
            "reason": .string(new.reason), "policy_version": .int(new.policyVersion),
        ]
        if let parent = new.parentJobID { detail["parent_job_id"] = .int(parent) }
        if let release = new.toRelease { detail["to_release"] = .int(release) }
        if let trace = new.traceparent { detail["traceparent"] = .string(trace) }
        try JobEvent.record(
            tx, job: id, event: "created", from: nil, to: .pending, actor: actor, detail: detail,
            now: now)
        try Audit.record(
            tx, at: now, actor: actor, action: "job.create", subject: subject,
            detail: detail.merging(["job_id": .int(id)]))
        try Events.jobCreated(tx, job: id, actor: actor, now: now)
        return id
    }

    /// Moves `job` to `target` if the state machine allows it.
    ///
    /// Leaving a lock-holding state releases the environment's lock and starts the oldest
    /// queued job of that environment. Entering `dispatching` needs the lock: use `start`.
    @discardableResult
    package static func transition(
        _ tx: Transaction, job: Int64, to target: JobState, actor: String,
        detail: JSONObject = [:], now: Int64
    ) throws -> Outcome {
        precondition(target != .dispatching, "use StateMachine.start to dispatch: it takes the lock")
        return try move(
            tx, Job.require(tx.db, id: job), to: target, actor: actor, detail: detail, now: now,
            fencingToken: nil)
    }

    /// Moves a job that may go ahead (no approvals outstanding) on: takes the environment's lock
    /// and goes to `dispatching` with a dispatch row in the outbox; or, when another job holds
    /// the lock, goes to `queued` (policy `queue`) or throws (policy `reject`).
    /// - Returns: the job's state afterwards.
    /// - Throws: `DravenError.environmentBusy` when the lock is held and the policy rejects.
    /// - Parameter queueWhenBusy: queue even under a `reject` policy (rollback and diagnostic jobs
    ///   the failure policy creates: nobody is there to retry them).
    @discardableResult
    package static func start(
        _ tx: Transaction, job id: Int64, policy: Policy, actor: String, now: Int64,
        queueWhenBusy: Bool = false
    ) throws -> JobState {
        let job = try Job.require(tx.db, id: id)
        guard job.state.canMove(to: .dispatching) else { return job.state }
        let environment = job.environmentID
        if let token = try Locks.acquire(
            tx, environment: environment, job: id, leaseSeconds: policy.leaseSeconds,
            now: now)
        {
            _ = try move(
                tx, job, to: .dispatching, actor: actor, detail: ["fencing_token": .int(token)], now: now,
                fencingToken: token)
            try Outbox.enqueue(
                tx, kind: .dispatch, job: id,
                payload: ["job_id": .int(id), "fencing_token": .int(token)], now: now)
            return .dispatching
        }
        let holder = try Locks.holder(tx.db, environment: environment)
        if let refusal = busyRefusal(environment: job.environment, holder: holder, policy: policy, queueWhenBusy) {
            throw refusal
        }
        if job.state == .queued { return .queued }
        let behind: JSON = holder.map { .int($0.jobID) } ?? .null
        _ = try move(
            tx, job, to: .queued, actor: actor, detail: ["behind_job": behind], now: now,
            fencingToken: nil)
        return .queued
    }

    /// What `start` answers a job of `environment` with when its lock is held (by `holder`):
    /// `.environmentBusy` under a `reject` policy unless `queueWhenBusy`; nil when the job queues.
    /// The console asks it too, to say why a button would be refused.
    package static func busyRefusal(
        environment: String, holder: Locks.Holder?, policy: Policy, _ queueWhenBusy: Bool = false
    ) -> DravenError? {
        switch queueWhenBusy ? .queue : policy.lockMode {
        case .queue: nil
        case .reject: .environmentBusy(environment: environment, heldBy: holder?.jobID ?? 0)
        }
    }

    /// Moves a job toward an outcome reported from outside (provider event, runner callback):
    /// a `dispatching` job passes through `running` on its way to `succeeded`. Anything the state
    /// machine does not allow (late, duplicate, backwards) is recorded as ignored.
    @discardableResult
    package static func report(
        _ tx: Transaction, job id: Int64, state target: JobState, actor: String,
        detail: JSONObject = [:], now: Int64
    ) throws -> Outcome {
        var job = try Job.require(tx.db, id: id)
        let current = job.state
        if current == .dispatching, target != .running, !JobState.dispatching.canMove(to: target) {
            let through = try move(tx, job, to: .running, actor: actor, detail: detail, now: now, fencingToken: nil)
            if case .moved = through {
                job.state = .running  // what the row now says (the move wrote nothing else of it but the time)
                job.updatedAt = now
            }
        }
        if current == target { return .ignored(current: target) }  // a repeat of what is known: nothing to record twice
        return try move(tx, job, to: target, actor: actor, detail: detail, now: now, fencingToken: nil)
    }

    /// Gives a job awaiting approval a new sha: a push moved its ref, and pipelines are started
    /// with the ref, so it would now deploy that commit. The approvals given for the old sha stop
    /// counting (`Approvals.count` matches the sha). Writes the job row, a `sha_changed` event and
    /// a `job.sha_changed` audit record, both with the detail `from` and `to` (the shas) followed
    /// by `detail`. A job in any other state, or already at `sha`, is left alone.
    /// - Returns: whether the job took the sha.
    @discardableResult
    package static func moveSha(
        _ tx: Transaction, job id: Int64, sha: String, actor: String, detail: JSONObject,
        now: Int64
    ) throws -> Bool {
        let job = try Job.require(tx.db, id: id)
        guard job.state == .awaitingApproval, (job.sha ?? "") != sha else { return false }
        try Job.setSha(tx, job: id, sha: sha, now: now)
        let detail = (["from": job.sha.map(JSON.string) ?? .null, "to": .string(sha)] as JSONObject).merging(detail)
        try note(tx, job: id, event: "sha_changed", actor: actor, detail: detail, now: now)
        try Audit.record(tx, at: now, actor: actor, action: "job.sha_changed", subject: "job/\(id)", detail: detail)
        return true
    }

    /// Records something that happened to a job without changing its state.
    package static func note(
        _ tx: Transaction, job: Int64, event: String, actor: String, detail: JSONObject, now: Int64
    ) throws {
        try JobEvent.record(tx, job: job, event: event, from: nil, to: nil, actor: actor, detail: detail, now: now)
    }

    /// The move itself: checks the table, writes the job row, its event and audit record, then
    /// builds the `Transition` (from `job` as the caller read it: the only read of it) and runs
    /// `effects` over it.
    private static func move(
        _ tx: Transaction, _ job: Job, to target: JobState, actor: String, detail: JSONObject,
        now: Int64, fencingToken: Int64?
    ) throws -> Outcome {
        let current = job.state
        guard current.canMove(to: target) else {
            try JobEvent.record(
                tx, job: job.id, event: "ignored", from: current, to: target, actor: actor,
                detail: detail, now: now)
            return .ignored(current: current)
        }
        try Job.setState(tx, job: job.id, to: target, fencingToken: fencingToken, now: now)
        try JobEvent.record(
            tx, job: job.id, event: "transition", from: current, to: target, actor: actor,
            detail: detail, now: now)
        try Audit.record(
            tx, at: now, actor: actor, action: "job.\(target.rawValue)", subject: "job/\(job.id)",
            detail: detail.merging(["from": .string(current.rawValue)]))
        var transition = Transition(job: job, from: current, to: target, actor: actor, detail: detail, now: now)
        for effect in effects { try effect.apply(tx, &transition) }
        return .moved(from: current, to: target)
    }

    /// Starts the next queued job of an environment whose lock just freed: rollback and
    /// diagnostic jobs first (they repair what a failed deploy left), then the oldest.
    static func startNextQueued(_ tx: Transaction, environment: Int64, actor: String, now: Int64) throws {
        guard
            let next = try tx.db.scalar(
                """
                SELECT j.id FROM jobs j WHERE j.environment_id = ?1 AND j.state = 'queued'
                ORDER BY \(Job.queueOrder) LIMIT 1
                """, [.int(environment)])
        else { return }
        try start(
            tx, job: next, policy: Policy.load(tx.db, environmentID: environment), actor: actor, now: now,
            queueWhenBusy: true)
    }
}

extension JSONObject {
    /// A copy with `other`'s entries added (replacing equal keys).
    package func merging(_ other: JSONObject) -> JSONObject {
        var copy = self
        for (k, v) in other.entries { copy[k] = v }
        return copy
    }
}
