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
    case succeeded, failed, timedOut = "timed_out", cancelled, rejected, expired

    package var isTerminal: Bool { JobState.next[self, default: []].isEmpty }

    /// Whether a job in this state holds (or may hold) its environment's lock.
    package var holdsLock: Bool { self == .dispatching || self == .running }

    /// The allowed transitions: the only table of them.
    package static let next: [JobState: Set<JobState>] = [
        .pending: [.awaitingApproval, .queued, .dispatching, .rejected, .cancelled],
        .awaitingApproval: [.queued, .dispatching, .rejected, .expired, .cancelled],
        .queued: [.dispatching, .cancelled],
        .dispatching: [.running, .failed, .timedOut, .cancelled],
        .running: [.succeeded, .failed, .timedOut, .cancelled],
    ]

    package func canMove(to target: JobState) -> Bool {
        JobState.next[self]?.contains(target) ?? false
    }
}
