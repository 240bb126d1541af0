/// One environment as its page shows it: the release history (newest first, the live one
/// marked, each with whether the viewer may roll back to it), the lock (holder, fencing token,
/// lease) and the queue in the order it will start (`Job.queued`). Rollback permissions come
/// from the checks `POST /api/v1/rollbacks` runs (`JobControl`), decided once for the page; the
/// live release is not offered (rolling back to it would redeploy what is live).
///
/// Cost: a fixed number of indexed reads, whatever the history's length (its rows' jobs in one
/// query).
package struct EnvironmentView: Sendable {
    /// One release of the history.
    package struct Release: Sendable {
        package var release: Releases.Release
        /// The job that made it live (who asked, why).
        package var job: Job?
        package var live: Bool
        /// "Roll back to this".
        package var rollBack: Permission
    }

    /// One queued job and its place (1 starts next).
    package struct Queued: Sendable {
        package var position: Int
        package var job: Job
    }

    package var project: String
    package var environment: String
    package var environmentID: Int64
    package var policy: Policy
    package var releases: [Release]
    /// The lock row (nil before the environment was first locked); `holder` is its job while held.
    package var lock: Locks.Lock?
    package var holder: Job?
    package var queue: [Queued]

    /// - Parameter limit: how many releases of the history (newest first).
    /// - Throws: `.notFound` when there is no such environment or the viewer may not read it
    ///   (the same answer, so names do not tell outsiders what exists).
    package static func load(
        _ db: Database, project: String, environment: String, viewer: Principal, limit: Int = 20
    ) throws -> EnvironmentView {
        guard
            try Grants.allows(db, person: viewer.personID, action: .read, project: project, environment: environment)
        else { throw DravenError.notFound(what: "no environment \(project)/\(environment)") }
        let target = try Target.find(db, project: project, environment: environment)
        let policy = try Policy.load(db, environmentID: target.environmentID)
        let history = try Releases.list(db, environment: target.environmentID, limit: limit)
        let jobs = Dictionary(
            try Job.many(db, ids: history.map(\.jobID)).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let rollBack = try Permission.deciding {
            _ = try JobControl.environmentRollback(db, viewer, project: project, environment: environment)
            if let refusal = try JobControl.rollbackStartRefusal(
                db, environment: environment, environmentID: target.environmentID, policy: policy)
            {
                throw refusal
            }
            return Recovery.waitsForApprovals(policy) ? "after \(policy.approvalsRequired) approvals" : nil
        }
        let releases = history.map { release in
            let live = release.liveUntil == nil
            return Release(
                release: release, job: jobs[release.jobID], live: live,
                rollBack: live && rollBack.allowed ? .pointless("this release is live now") : rollBack)
        }
        let lock = try Locks.lock(db, environment: target.environmentID)
        let holder = try lock?.jobID.flatMap { try Job.find(db, id: $0) }
        let queue = try Job.queued(db, environment: target.environmentID).enumerated().map {
            Queued(position: $0.offset + 1, job: $0.element)
        }
        return EnvironmentView(
            project: project, environment: environment, environmentID: target.environmentID, policy: policy,
            releases: releases, lock: lock, holder: holder, queue: queue)
    }
}
