/// The effects of a move (`StateMachine.effects` gives their order and why): each says when it
/// applies; what it writes is the owner's (`Locks`, `Releases`, `Recovery`, `Notifications`,
/// `ApprovalMessages`, `Events`).
extension Transition {
    /// Entering `running` restarts the lease of the job's lock from now.
    package struct RenewLease: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.to == .running else { return }
            try Locks.renew(tx, job: t.job.id, now: t.now)
        }
    }

    /// Leaving a lock-holding state frees the environment's lock, if the job holds it.
    package struct FreeLock: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.from.holdsLock, !t.to.holdsLock else { return }
            t.freedLock = try Locks.release(tx, environment: t.job.environmentID, job: t.job.id)
        }
    }

    /// A job that succeeded is the environment's live release (unless its kind is no release).
    package struct RecordRelease: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.to == .succeeded else { return }
            try Releases.record(tx, t)
        }
    }

    /// A job that was running and failed or timed out gets its environment's failure policy.
    package struct Recover: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.from == .running, t.to == .failed || t.to == .timedOut else { return }
            try Recovery.afterFailure(tx, t)
        }
    }

    /// A job that ended is a plan step's (or a compensation's): its run moves on.
    package struct AdvancePlan: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.to.isTerminal else { return }
            try PlanEngine.jobEnded(tx, t)
        }
    }

    /// When this move freed the lock, the environment's next queued job starts.
    package struct StartNextQueued: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.freedLock else { return }
            try StateMachine.startNextQueued(tx, environment: t.job.environmentID, actor: t.actor, now: t.now)
        }
    }

    /// A job that ended (`Notifications.announced`) is announced on the project's channels.
    package struct Notify: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard Notifications.announced.contains(t.to) else { return }
            try Notifications.enqueue(tx, t)
        }
    }

    /// Entering `awaiting_approval` posts the approval request; leaving it updates the request.
    package struct UpdateApprovalMessages: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            guard t.to == .awaitingApproval || t.from == .awaitingApproval else { return }
            try ApprovalMessages.enqueue(tx, t)
        }
    }

    /// Every move is told to the event stream's subscribers (`Events.jobMoved`: the job's event,
    /// the lock, the release), as outbox rows in the move's transaction.
    package struct Publish: Effect {
        package init() {}
        package func apply(_ tx: Transaction, _ t: inout Transition) throws {
            try Events.jobMoved(tx, t)
        }
    }
}
