/// Rollback and diagnostic jobs: what an environment's failure policy (`on_failure`) creates when
/// a deploy that was running fails or times out, and what a manual rollback creates.
///
/// Both kinds take the environment's lock before any queued deploy (`StateMachine.startNextQueued`);
/// with both in the policy the diagnostic runs first (it looks at the broken state), then the
/// rollback (`FailureAction`'s order). Only a failed *deploy* leads anywhere
/// (`JobKind.hasFailurePolicy`): a failed rollback or diagnostic never triggers another job, so
/// recovery cannot loop.
package enum Recovery {
    /// Applies the failure policy of the environment of the job that `failure` ended; runs in
    /// the transaction that ended it (`Transition.Recover`).
    static func afterFailure(_ tx: Transaction, _ failure: Transition) throws {
        let failed = failure.job
        let id = failed.id
        let actor = failure.actor
        let now = failure.now
        guard failed.kind.hasFailurePolicy else { return }
        let policy = try Policy.load(tx.db, environmentID: failed.environmentID)
        let requester = failed.requestedByID
        let why = "job \(id) \(failure.to == .timedOut ? "timed out" : "failed")"
        for action in FailureAction.allCases where policy.onFailure.contains(action) {
            switch action {
            case .diagnostic:
                let ref = try GitRef.parse(failed.ref, kind: failed.refKind, policyKinds: [])
                let new = StateMachine.NewJob(
                    kind: .diagnostic, like: failed, ref: ref, sha: failed.sha,
                    reason: "diagnostic: \(why)", requestedBy: requester,
                    policyVersion: policy.version, parentJobID: id, toRelease: nil)
                let diagnostic = try StateMachine.create(
                    tx, new, actor: actor,
                    subject: "\(failed.project)/\(failed.environment)", now: now)
                try StateMachine.start(tx, job: diagnostic, policy: policy, actor: actor, now: now, queueWhenBusy: true)
            case .rollback:
                guard let target = try Releases.live(tx.db, environment: failed.environmentID) else {
                    try StateMachine.note(
                        tx, job: id, event: "recovery", actor: actor,
                        detail: [
                            "rollback": "skipped: the environment has no succeeded release to roll back to"
                        ], now: now)
                    continue
                }
                try rollback(
                    tx, like: failed, to: target, policy: policy, parent: id, requestedBy: requester,
                    reason: "rollback: \(why)", actor: actor, queueWhenBusy: true, now: now)
            }
        }
    }

    /// Creates a rollback job of `job`'s environment to `target` and moves it on: to
    /// `awaiting_approval` when the policy has `rollback_approvals` and needs approvals, else it
    /// takes the lock (or queues).
    /// - Throws: `.environmentBusy` when the lock is held, the policy rejects and `queueWhenBusy` is false.
    @discardableResult
    package static func rollback(
        _ tx: Transaction, like job: Job, to target: Releases.Release, policy: Policy, parent: Int64?,
        requestedBy: Int64, reason: String, actor: String, queueWhenBusy: Bool, now: Int64
    ) throws -> Int64 {
        let ref = try GitRef.parse(target.ref, kind: target.refKind, policyKinds: [])
        let new = StateMachine.NewJob(
            kind: .rollback, like: job, ref: ref, sha: target.sha, reason: reason,
            requestedBy: requestedBy, policyVersion: policy.version, parentJobID: parent,
            toRelease: target.id)
        let id = try StateMachine.create(tx, new, actor: actor, subject: "\(job.project)/\(job.environment)", now: now)
        if waitsForApprovals(policy) {
            try StateMachine.transition(
                tx, job: id, to: .awaitingApproval, actor: actor,
                detail: ["approvals_required": .int(Int64(policy.approvalsRequired))], now: now)
        } else {
            try StateMachine.start(tx, job: id, policy: policy, actor: actor, now: now, queueWhenBusy: queueWhenBusy)
        }
        return id
    }

    /// Whether a rollback under `policy` waits for approvals before it takes the lock: the policy
    /// has `rollback_approvals` and needs approvals.
    package static func waitsForApprovals(_ policy: Policy) -> Bool {
        policy.rollbackApprovals && policy.approvalsRequired > 0
    }
}
