/// Rolling an environment back to a release of its history, inside the caller's transaction: what
/// `POST /api/v1/rollbacks`, the console and a deploy plan's compensation do. The checks are
/// `JobControl`'s (the `rollback` grant, a live release to model the job on); the job is
/// `Recovery.rollback`'s (approvals when the policy has `rollback_approvals`, else the lock or the queue).
package enum Rollbacks {
    /// Where to: a release named as `POST /api/v1/rollbacks` names one (`to_release`: nil for the
    /// one before the live release), or a release by its id (what a plan run remembered).
    package enum Destination: Sendable {
        case named(String?)
        case release(Int64)
    }

    /// Creates the rollback job of `project`/`environment` to `destination`, requested by `principal`.
    /// Returns its id.
    /// - Parameter queueWhenBusy: queue even under a `reject` policy (a plan's compensation: nobody
    ///   is there to try again).
    /// - Throws: `.notFound` (no such environment), `.forbidden`, `.conflict` (no release history,
    ///   none before the live one, or the release is not the environment's), `.invalidField`
    ///   (`/to_release` names no release), `.environmentBusy`.
    package static func rollBack(
        _ tx: Transaction, project: String, environment: String, to destination: Destination,
        by principal: Principal, reason: String?, queueWhenBusy: Bool = false, now: Int64
    ) throws -> Int64 {
        let db = tx.db
        let (target, live) = try JobControl.environmentRollback(
            db, principal, project: project, environment: environment)
        let release: Releases.Release
        switch destination {
        case .named(let named):
            release = try JobControl.rollbackRelease(
                db, project: project, environment: environment, environmentID: target.environmentID, named: named)
        case .release(let id):
            guard let found = try Releases.find(db, environment: target.environmentID, id: id) else {
                throw DravenError.conflict("\(project)/\(environment) has no release \(id) in its history")
            }
            release = found
        }
        return try Recovery.rollback(
            tx, like: try Job.require(db, id: live.jobID), to: release,
            policy: try Policy.load(db, environmentID: target.environmentID), parent: nil,
            requestedBy: principal.personID, reason: reason ?? "manual rollback to release \(release.id)",
            actor: principal.handle, queueWhenBusy: queueWhenBusy, now: now)
    }
}
