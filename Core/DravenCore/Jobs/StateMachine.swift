/// The one place where jobs change state. Every function here takes a `Transaction` (callers
/// run inside `Database.immediate`, i.e. `BEGIN IMMEDIATE`), and writes the job row, a job
/// event and an audit record together; the environment's lock moves in the same transaction.
package enum StateMachine {
    package enum Outcome: Equatable, Sendable {
        case moved(from: JobState, to: JobState)
        /// The transition is not allowed from the job's current state (late, duplicate or out
        /// of order). It is recorded as an `ignored` event; nothing else changes.
        case ignored(current: JobState)
    }

    /// What a new job is.
    package struct NewJob: Sendable {
        package var kind = "deploy"
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

        package init(kind: String = "deploy", projectID: Int64, environmentID: Int64, ref: GitRef, sha: String?, reason: String,
                     requestedBy: Int64, policyVersion: Int64, parentJobID: Int64? = nil, idempotencyKey: String? = nil,
                     requestDigest: String? = nil) {
            self.kind = kind; self.projectID = projectID; self.environmentID = environmentID; self.ref = ref; self.sha = sha
            self.reason = reason; self.requestedBy = requestedBy; self.policyVersion = policyVersion
            self.parentJobID = parentJobID; self.idempotencyKey = idempotencyKey; self.requestDigest = requestDigest
        }

        /// A job of `kind` for the environment `environmentID` on the ref of `job` (recovery jobs).
        init(kind: String, like job: Job, ref: GitRef, sha: String?, reason: String, requestedBy: Int64, policyVersion: Int64,
             parentJobID: Int64?, toRelease: Int64?) {
            self.init(kind: kind, projectID: job.projectID, environmentID: job.environmentID, ref: ref, sha: sha, reason: reason,
                      requestedBy: requestedBy, policyVersion: policyVersion, parentJobID: parentJobID)
            self.toRelease = toRelease
        }
    }

    /// Creates a job in `pending`.
    package static func create(_ tx: Transaction, _ new: NewJob, actor: String, subject: String, now: Int64) throws -> Int64 {
        try tx.db.run("""
            INSERT INTO jobs (kind, project_id, environment_id, ref, ref_kind, sha, reason, state, requested_by, policy_version,
                              parent_job_id, idempotency_key, request_digest, created_at, updated_at, to_release)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)
            """, [.text(new.kind), .int(new.projectID), .int(new.environmentID), .text(new.ref.qualified), .text(new.ref.kind.rawValue),
                  .text(new.sha), .text(new.reason), .int(new.requestedBy), .int(new.policyVersion), .int(new.parentJobID),
                  .text(new.idempotencyKey), .text(new.requestDigest), .int(now), .int(new.toRelease)])
        let id = tx.db.lastInsertRowID
        var detail: JSONObject = ["kind": .string(new.kind), "ref": .string(new.ref.qualified), "sha": new.sha.map(JSON.string) ?? .null,
                                  "reason": .string(new.reason), "policy_version": .int(new.policyVersion)]
        if let parent = new.parentJobID { detail["parent_job_id"] = .int(parent) }
        if let release = new.toRelease { detail["to_release"] = .int(release) }
        try event(tx, job: id, event: "created", from: nil, to: .pending, actor: actor, detail: detail, now: now)
        try Audit.record(tx, at: now, actor: actor, action: "job.create", subject: subject,
                         detail: detail.merging(["job_id": .int(id)]))
        return id
    }

    /// Moves `job` to `target` if the state machine allows it.
    ///
    /// Leaving a lock-holding state releases the environment's lock and starts the oldest
    /// queued job of that environment. Entering `dispatching` needs the lock: use `start`.
    @discardableResult
    package static func transition(_ tx: Transaction, job: Int64, to target: JobState, actor: String,
                                   detail: JSONObject = [:], now: Int64) throws -> Outcome {
        precondition(target != .dispatching, "use StateMachine.start to dispatch: it takes the lock")
        return try move(tx, job: job, to: target, actor: actor, detail: detail, now: now, fencingToken: nil)
    }

    /// Moves a job that may go ahead (no approvals outstanding) on: takes the environment's lock
    /// and goes to `dispatching` with a dispatch row in the outbox; or, when another job holds
    /// the lock, goes to `queued` (policy `queue`) or throws (policy `reject`).
    /// - Returns: the job's state afterwards.
    /// - Throws: `DravenError.environmentBusy` when the lock is held and the policy rejects.
    /// - Parameter queueWhenBusy: queue even under a `reject` policy (rollback and diagnostic jobs
    ///   the failure policy creates: nobody is there to retry them).
    @discardableResult
    package static func start(_ tx: Transaction, job: Int64, policy: Policy, actor: String, now: Int64,
                              queueWhenBusy: Bool = false) throws -> JobState {
        guard let row = try tx.db.first("SELECT state, environment_id FROM jobs WHERE id = ?1", [.int(job)], { ($0.text(0), $0.int(1)) }),
              let state = JobState(rawValue: row.0)
        else { throw DravenError.notFound(what: "no job \(job)") }
        guard state.canMove(to: .dispatching) else { return state }
        if let token = try Locks.acquire(tx, environment: row.1, job: job, leaseSeconds: policy.leaseSeconds, now: now) {
            _ = try move(tx, job: job, to: .dispatching, actor: actor, detail: ["fencing_token": .int(token)], now: now, fencingToken: token)
            try Outbox.enqueue(tx, kind: .dispatch, job: job, payload: ["job_id": .int(job), "fencing_token": .int(token)], now: now)
            return .dispatching
        }
        let holder = try Locks.holder(tx.db, environment: row.1)
        switch queueWhenBusy ? .queue : policy.lockMode {
        case .queue:
            if state == .queued { return .queued }
            _ = try move(tx, job: job, to: .queued, actor: actor, detail: ["behind_job": holder.map { .int($0.jobID) } ?? .null],
                     now: now, fencingToken: nil)
            return .queued
        case .reject:
            let name = try tx.db.first("SELECT name FROM environments WHERE id = ?1", [.int(row.1)]) { $0.text(0) } ?? ""
            throw DravenError.environmentBusy(environment: name, heldBy: holder?.jobID ?? 0)
        }
    }

    /// Moves a job toward an outcome reported from outside (provider event, runner callback):
    /// a `dispatching` job passes through `running` on its way to `succeeded`. Anything the state
    /// machine does not allow (late, duplicate, backwards) is recorded as ignored.
    @discardableResult
    package static func report(_ tx: Transaction, job: Int64, state target: JobState, actor: String,
                               detail: JSONObject = [:], now: Int64) throws -> Outcome {
        let current = try tx.db.first("SELECT state FROM jobs WHERE id = ?1", [.int(job)]) { JobState(rawValue: $0.text(0)) } ?? nil
        if current == .dispatching, target != .running, !JobState.dispatching.canMove(to: target) {
            _ = try move(tx, job: job, to: .running, actor: actor, detail: detail, now: now, fencingToken: nil)
        }
        if current == target { return .ignored(current: target) }  // a repeat of what is known: nothing to record twice
        return try move(tx, job: job, to: target, actor: actor, detail: detail, now: now, fencingToken: nil)
    }

    /// Records something that happened to a job without changing its state.
    package static func note(_ tx: Transaction, job: Int64, event: String, actor: String, detail: JSONObject, now: Int64) throws {
        try self.event(tx, job: job, event: event, from: nil, to: nil, actor: actor, detail: detail, now: now)
    }

    private static func move(_ tx: Transaction, job: Int64, to target: JobState, actor: String, detail: JSONObject,
                             now: Int64, fencingToken: Int64?) throws -> Outcome {
        guard let row = try tx.db.first("SELECT state, environment_id FROM jobs WHERE id = ?1", [.int(job)], { ($0.text(0), $0.int(1)) }),
              let current = JobState(rawValue: row.0)
        else { throw DravenError.notFound(what: "no job \(job)") }
        guard current.canMove(to: target) else {
            try event(tx, job: job, event: "ignored", from: current, to: target, actor: actor, detail: detail, now: now)
            return .ignored(current: current)
        }
        try tx.db.run("UPDATE jobs SET state = ?2, updated_at = ?3, fencing_token = coalesce(?4, fencing_token) WHERE id = ?1",
                      [.int(job), .text(target.rawValue), .int(now), .int(fencingToken)])
        try event(tx, job: job, event: "transition", from: current, to: target, actor: actor, detail: detail, now: now)
        try Audit.record(tx, at: now, actor: actor, action: "job.\(target.rawValue)", subject: "job/\(job)",
                         detail: detail.merging(["from": .string(current.rawValue)]))
        // The lease runs from when the run starts (a dispatch may have waited in its backoff).
        if target == .running { try Locks.renew(tx, job: job, now: now) }
        let released = current.holdsLock && !target.holdsLock ? try Locks.release(tx, environment: row.1, job: job) : false
        if target == .succeeded { try Releases.record(tx, job: job, now: now) }
        // A deploy that ran and then failed or went silent: the environment's failure policy.
        if current == .running, target == .failed || target == .timedOut {
            try Recovery.afterFailure(tx, job: job, state: target, actor: actor, now: now)
        }
        if released { try promoteNext(tx, environment: row.1, actor: actor, now: now) }
        try Notifications.enqueue(tx, job: job, state: target, now: now)
        try ApprovalMessages.enqueue(tx, job: job, from: current, to: target, now: now)
        return .moved(from: current, to: target)
    }

    /// Starts the next queued job of an environment whose lock just freed: rollback and
    /// diagnostic jobs first (they repair what a failed deploy left), then the oldest.
    private static func promoteNext(_ tx: Transaction, environment: Int64, actor: String, now: Int64) throws {
        guard let next = try tx.db.scalar("""
            SELECT id FROM jobs WHERE environment_id = ?1 AND state = 'queued' ORDER BY kind = 'deploy', id LIMIT 1
            """, [.int(environment)]) else { return }
        try start(tx, job: next, policy: Policy.load(tx.db, environmentID: environment), actor: actor, now: now, queueWhenBusy: true)
    }

    private static func event(_ tx: Transaction, job: Int64, event: String, from: JobState?, to: JobState?, actor: String,
                              detail: JSONObject, now: Int64) throws {
        try tx.db.run("INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      [.int(job), .int(now), .text(event), .text(from?.rawValue), .text(to?.rawValue), .text(actor),
                       .text(JSON.object(detail).serialized())])
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
