/// One move of one job, as its effects see it: the job as read once, before the move (so its
/// `state` is `from`), where it went, who moved it, why (`detail`, as in its event) and when.
/// `StateMachine` builds one per move, after writing the job row, its event and its audit
/// record, and runs `StateMachine.effects` over it in the move's transaction. The job's other
/// columns are the same after the move; only its state, `updated_at` and fencing token changed.
package struct Transition: Sendable {
    package let job: Job
    package let from: JobState
    package let to: JobState
    package let actor: String
    package let detail: JSONObject
    package let now: Int64
    /// Whether this move freed the environment's lock: set by `FreeLock`, read by `StartNextQueued`.
    package var freedLock = false

    package init(job: Job, from: JobState, to: JobState, actor: String, detail: JSONObject = [:], now: Int64) {
        self.job = job
        self.from = from
        self.to = to
        self.actor = actor
        self.detail = detail
        self.now = now
    }

    /// One consequence of a move: decides from the transition alone whether it applies, and
    /// writes its rows in the move's transaction (outbox rows for anything that calls out: never
    /// a call itself). Each is run alone by its tests.
    package protocol Effect: Sendable {
        func apply(_ tx: Transaction, _ transition: inout Transition) throws
    }
}

extension StateMachine {
    /// What follows every move, in this order:
    ///
    /// 1. `RenewLease`: entering `running` restarts the lock's lease from now (the dispatch may
    ///    have waited in its backoff).
    /// 2. `FreeLock`: leaving `dispatching`/`running` frees the environment's lock, in the
    ///    transaction that ends the job. Before 4, 5 and 6, which want the lock.
    /// 3. `RecordRelease`: a succeeded deploy or rollback becomes the environment's live release.
    ///    (A move ends in one state, so 3 and 4 never both apply.)
    ///    `CountMetrics` then keeps `/metrics`' figures of the move (`JobMetrics`), reading that release.
    /// 4. `Recover`: a deploy that failed or timed out while running gets the environment's
    ///    failure policy: a diagnostic and/or a rollback job, created and started here, so they
    ///    take the freed lock before any queued deploy.
    /// 5. `AdvancePlan`: a plan step whose job ended (or a compensation's rollback job) moves
    ///    its run on (`PlanEngine.jobEnded`): its next steps start here, after recovery (which
    ///    repairs first) and before the queue, so a next step on the same environment takes the
    ///    freed lock; it reads the release 3 recorded.
    /// 6. `StartNextQueued`: when 2 freed the lock, the next queued job of the environment starts
    ///    (if 4 or 5 took the lock, it stays queued).
    /// 7. `Notify`: a job that ended is announced on the project's channels.
    /// 8. `UpdateApprovalMessages`: entering or leaving `awaiting_approval` posts or updates the
    ///    approval request in chat.
    ///
    /// 9. `Publish`: the move's events (the job's, the lock's, the release's) go to the event
    ///    stream's subscribers. Last: it reads what 2 and 3 wrote (the freed lock, the release
    ///    before this one). The events of the moves 4 to 6 caused were published by those moves,
    ///    inside this one, so a subscriber sees a recovery job's creation before the failure
    ///    that caused it; the `sequence` numbers say the order events were written in.
    ///
    /// 7 and 8 come last so the outbox keeps the order it has always had: the dispatches of the
    /// jobs this move started, then the messages about it. A new effect is one line here, put
    /// where what it reads has been written.
    package static let effects: [any Transition.Effect] = [
        Transition.RenewLease(),
        Transition.FreeLock(),
        Transition.RecordRelease(),
        Transition.CountMetrics(),
        Transition.Recover(),
        Transition.AdvancePlan(),
        Transition.StartNextQueued(),
        Transition.Notify(),
        Transition.UpdateApprovalMessages(),
        Transition.Publish(),
    ]
}
