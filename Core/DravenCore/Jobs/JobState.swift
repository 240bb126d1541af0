/// The states of a job (DESIGN.md, "Deploy job state machine").
///
/// ```
/// pending ─▶ awaiting_approval ─▶ queued ─▶ dispatching ─▶ running ─▶ succeeded
///    │              │               │            │             │  ├─▶ failed
///    ▼              ▼               ▼            ▼             │  └─▶ timed_out
/// rejected   rejected/expired   cancelled     failed           └─▶ cancelled
/// ```
/// States that do not apply are skipped (no approvals needed: pending → queued/dispatching;
/// lock free: → dispatching). Any non-terminal job can be cancelled. Terminal states never change.
package enum JobState: String, Sendable, CaseIterable {
    case pending
    case awaitingApproval = "awaiting_approval"
    case queued, dispatching, running
    case succeeded, failed
    case timedOut = "timed_out"
    case cancelled, rejected, expired

    package var isTerminal: Bool { next.isEmpty }

    /// Whether a job in this state holds (or may hold) its environment's lock.
    package var holdsLock: Bool { self == .dispatching || self == .running }

    /// The allowed transitions: the only table of them. (A switch over bit sets, not a
    /// `[JobState: Set<JobState>]`: that dictionary's generic metadata cost ~0.14 M instructions
    /// to instantiate in every process that moved a job.)
    package var next: JobStates {
        switch self {
        case .pending: [.awaitingApproval, .queued, .dispatching, .rejected, .cancelled]
        case .awaitingApproval: [.queued, .dispatching, .rejected, .expired, .cancelled]
        case .queued: [.dispatching, .cancelled]
        case .dispatching: [.running, .failed, .timedOut, .cancelled]
        case .running: [.succeeded, .failed, .timedOut, .cancelled]
        case .succeeded, .failed, .timedOut, .cancelled, .rejected, .expired: []
        }
    }

    package func canMove(to target: JobState) -> Bool {
        next.contains(JobStates(target))
    }
}

/// A set of job states, as bits.
package struct JobStates: OptionSet, Sendable {
    package let rawValue: UInt16
    package init(rawValue: UInt16) { self.rawValue = rawValue }
    package init(_ state: JobState) {
        rawValue =
            switch state {
            case .pending: 1 << 0
            case .awaitingApproval: 1 << 1
            case .queued: 1 << 2
            case .dispatching: 1 << 3
            case .running: 1 << 4
            case .succeeded: 1 << 5
            case .failed: 1 << 6
            case .timedOut: 1 << 7
            case .cancelled: 1 << 8
            case .rejected: 1 << 9
            case .expired: 1 << 10
            }
    }

    package static let pending = JobStates(.pending)
    package static let awaitingApproval = JobStates(.awaitingApproval)
    package static let queued = JobStates(.queued)
    package static let dispatching = JobStates(.dispatching)
    package static let running = JobStates(.running)
    package static let succeeded = JobStates(.succeeded)
    package static let failed = JobStates(.failed)
    package static let timedOut = JobStates(.timedOut)
    package static let cancelled = JobStates(.cancelled)
    package static let rejected = JobStates(.rejected)
    package static let expired = JobStates(.expired)

    package func contains(_ state: JobState) -> Bool { contains(JobStates(state)) }
}
