/// The `deliveries` table: what was received once and must not be applied twice — provider
/// webhooks (dedupe by delivery id), runner callbacks and chat requests (replay keys).
package enum Deliveries {
    /// Forgets Slack signatures older than twice the timestamp window: a request that old is
    /// refused by its timestamp anyway (a `Sweeper` step; Teams bodies carry no checked
    /// timestamp, so their keys are kept).
    package static func forgetOldSlackSignatures(_ db: Database, now: Int64) throws {
        try db.run("DELETE FROM deliveries WHERE source = 'slack' AND event = 'vote' AND received_at < ?1",
                   [.int(now - 2 * SignedRequest.window)])
    }
}
