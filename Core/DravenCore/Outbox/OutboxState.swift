/// Where an outbox row is (the `outbox.state` column; the raw values are what is stored).
package enum OutboxState: String, Sendable, CaseIterable {
    /// Waiting for its next attempt (`next_attempt_at`).
    case pending
    /// Claimed by a deliverer, whose claim runs out at `next_attempt_at` (then it is due again).
    case delivering
    /// Sent and answered (`delivered_at`).
    case delivered
    /// Given up, with the reason in `last_error`.
    case dead
}
