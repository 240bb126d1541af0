/// Every job awaiting approval, across projects, that the viewer may approve now — the vote's
/// own checks pass (`Approvals.Checks`: grant, state, window, approver group, self-approval,
/// refs) and they have no approval on it that already counts — newest first, each with its
/// expiry and the votes so far. Only jobs of environments the viewer may read are considered.
///
/// Cost: one query for the jobs awaiting approval (the `jobs_state` index), one for the tallies
/// of all of them (`Approvals.counted`), and per *environment* (not per job) the grant, policy,
/// membership and lock reads of `Approvals.Checks` and `JobDecider`.
package struct ApprovalsInbox: Sendable {
    /// One job waiting for the viewer.
    package struct Item: Sendable {
        package var job: Job
        /// When the approval window closes (the policy's approval TTL from the request).
        package var expiresAt: Int64
        package var required: Int64
        /// Who approved so that it counts now, in order.
        package var approvedBy: [String]
        /// The viewer's approval (allowed, perhaps with the lock refusing it as the last one).
        package var approve: Permission
        package var reject: Permission
    }

    package var items: [Item]

    package static func load(_ db: Database, viewer: Principal, now: Int64 = Clock.now()) throws -> ApprovalsInbox {
        var decider = JobDecider(db, viewer: viewer, now: now)
        var readable: [Job] = []
        for job in try Job.awaitingApproval(db) {
            if try decider.checks.allows(viewer.personID, .read, job) { readable.append(job) }
        }
        let counted = try Approvals.counted(db, jobs: readable.map(\.id))
        var items: [Item] = []
        for job in readable {
            let votes = counted[job.id] ?? []
            let approve = try decider.approve(job, counted: votes)
            guard approve.allowed || isBusy(approve) else { continue }
            let rules = try decider.checks.policy(job.environmentID).approvals
            items.append(
                Item(
                    job: job, expiresAt: job.createdAt + rules.ttl, required: rules.required,
                    approvedBy: votes.map(\.handle), approve: approve, reject: try decider.reject(job)))
        }
        return ApprovalsInbox(items: items)
    }

    /// The busy-environment refusal `approve` may carry (the vote's checks passed; only the lock
    /// would refuse it as the last approval): such a job still waits for the viewer.
    private static func isBusy(_ permission: Permission) -> Bool {
        if case .environmentBusy? = permission.refusal { return true }
        return false
    }
}
