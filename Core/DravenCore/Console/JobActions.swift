/// Which of approve, reject, cancel and roll back the viewer may take on one job now, and for
/// each they may not, why not (`Permission`), with the approval tally while the job awaits
/// approval ("1 of 2 approvals — may approve: bob, erin"). Decided through the checks the routes
/// run (`Approvals.Checks`, `JobControl`, `StateMachine.busyRefusal`), never a copy of them.
package struct JobActions: Sendable {
    package var job: Job
    package var approve: Permission
    package var reject: Permission
    package var cancel: Permission
    package var rollBack: Permission
    /// While the job awaits approval.
    package var approvals: ApprovalProgress?

    /// The actions on job `id` for `viewer` at `now`.
    /// - Throws: `.notFound` when there is no such job or the viewer may not read it (as the API).
    package static func `for`(_ db: Database, job id: Int64, viewer: Principal, now: Int64 = Clock.now()) throws
        -> JobActions
    {
        let job = try Job.require(db, id: id)
        try Grants.require(db, viewer, .read, job: job)
        var decider = JobDecider(db, viewer: viewer, now: now)
        return try decider.actions(job)
    }
}

/// Where a job awaiting approval stands: who approved (what counts now: `Approvals.count`'s
/// rule), how many are needed, who else could still approve (each passing the checks a vote of
/// theirs would), and until when.
package struct ApprovalProgress: Sendable, Equatable {
    package var required: Int64
    /// Handles, in the order they approved.
    package var approvedBy: [String]
    package var mayApprove: [String]
    /// When the approval window closes (the policy's approval TTL from the request).
    package var expiresAt: Int64

    /// "1 of 2 approvals — may approve: bob, erin".
    package var summary: String {
        let who = mayApprove.isEmpty ? "nobody else may approve" : "may approve: " + mayApprove.joined(separator: ", ")
        return "\(approvedBy.count) of \(required) approval\(required == 1 ? "" : "s") — \(who)"
    }
}

/// Decides the console's actions for one viewer, reading each fact once per page: grants,
/// policies and memberships through `Approvals.Checks`, lock holders per environment.
package struct JobDecider {
    let db: Database
    package let viewer: Principal
    package let now: Int64
    package var checks: Approvals.Checks
    private var holders: [Int64: Locks.Holder?] = [:]

    package init(_ db: Database, viewer: Principal, now: Int64) {
        self.db = db
        self.viewer = viewer
        self.now = now
        checks = Approvals.Checks(db)
    }

    /// Every action on `job` (which the viewer may read).
    package mutating func actions(_ job: Job) throws -> JobActions {
        let counted = job.state == .awaitingApproval ? try Approvals.counted(db, jobs: [job.id])[job.id] ?? [] : []
        return JobActions(
            job: job, approve: try approve(job, counted: counted), reject: try reject(job),
            cancel: try cancel(job), rollBack: try rollBack(job),
            approvals: job.state == .awaitingApproval ? try progress(job, counted: counted) : nil)
    }

    mutating func holder(_ environment: Int64) throws -> Locks.Holder? {
        if let known = holders[environment] { return known }
        let holder = try Locks.holder(db, environment: environment)
        holders[environment] = holder
        return holder
    }

    /// The vote's checks; then, for the approval that would be the last one, the lock it would
    /// take (`StateMachine.start`: a busy environment under `reject` refuses it). An approval the
    /// viewer already gave that still counts is not offered again (the API would count nothing).
    /// - Parameter counted: who approved `job` so that it counts now (`Approvals.counted`).
    package mutating func approve(_ job: Job, counted: [(id: Int64, handle: String)]) throws -> Permission {
        var policy: Policy?
        let permission = try Permission.deciding {
            policy = try checks.check(job, person: viewer.personID, handle: viewer.handle, decision: .approve, now: now)
            return nil
        }
        guard permission.allowed, let policy else { return permission }
        if counted.contains(where: { $0.id == viewer.personID }) {
            let sha = job.sha.map { " for \($0.prefix(12))" } ?? ""
            return .pointless("you already approved this \(job.kind.rawValue)\(sha); your approval counts")
        }
        guard Int64(counted.count) + 1 >= policy.approvals.required else {
            let left = policy.approvals.required - Int64(counted.count) - 1
            return .allowed(note: "\(left) more approval\(left == 1 ? "" : "s") needed after yours")
        }
        if let holder = try holder(job.environmentID),
            let refusal = StateMachine.busyRefusal(environment: job.environment, holder: holder, policy: policy)
        {
            return .refused(refusal)
        }
        return .allowed(note: "your approval starts the \(job.kind.rawValue)")
    }

    package mutating func reject(_ job: Job) throws -> Permission {
        try Permission.deciding {
            _ = try checks.check(job, person: viewer.personID, handle: viewer.handle, decision: .reject, now: now)
            return "rejecting ends the \(job.kind.rawValue)"
        }
    }

    package func cancel(_ job: Job) throws -> Permission {
        try Permission.deciding {
            try JobControl.checkCancel(db, viewer, job: job)
            return job.state.holdsLock && job.runID != nil ? "the provider is asked to stop the run" : nil
        }
    }

    package mutating func rollBack(_ job: Job) throws -> Permission {
        try Permission.deciding {
            let release = try JobControl.rollbackTarget(db, viewer, job: job)
            let policy = try checks.policy(job.environmentID)
            if let refusal = try JobControl.rollbackStartRefusal(
                db, environment: job.environment, environmentID: job.environmentID, policy: policy)
            {
                throw refusal
            }
            let to = "rolls back to release \(release.id) (\(release.ref))"
            return Recovery.waitsForApprovals(policy) ? to + ", after \(policy.approvalsRequired) approvals" : to
        }
    }

    /// The tally of `job` and who else may approve it: every enabled member of its approver
    /// groups whose approval is not counted yet and would pass the vote's checks.
    package mutating func progress(_ job: Job, counted: [(id: Int64, handle: String)]) throws -> ApprovalProgress {
        let rules = try checks.policy(job.environmentID).approvals
        var may: [String] = []
        for person in try Approvals.candidates(db, rules: rules) {
            guard !counted.contains(where: { $0.id == person.id }) else { continue }
            do {
                _ = try checks.check(job, person: person.id, handle: person.handle, decision: .approve, now: now)
                may.append(person.handle)
            } catch is DravenError {}
        }
        return ApprovalProgress(
            required: rules.required, approvedBy: counted.map(\.handle), mayApprove: may,
            expiresAt: job.createdAt + rules.ttl)
    }
}
