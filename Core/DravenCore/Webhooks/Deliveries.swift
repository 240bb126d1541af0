/// Owns the `deliveries` table: what was received once and must not be applied twice —
/// provider webhooks (dedupe by delivery id), runner callbacks and chat requests (replay keys).
/// Every statement on `deliveries` is here; `insertOnce` is the one insert for all three.
package enum Deliveries {
    /// What is remembered of one received request. `source` and `key` (`delivery_id`) together
    /// are unique: `"<provider>:<project>"` and the delivery id for webhooks, `"runner"` and the
    /// replay key for callbacks, the chat platform and its replay key for votes.
    package struct Record: Sendable {
        package var source: String
        package var key: String
        package var event: String
        package var jobID: Int64? = nil
        package var bodyHash: String? = nil
        package var runKey: String? = nil
        package var reportedState: String? = nil

        package init(
            source: String, key: String, event: String, jobID: Int64? = nil, bodyHash: String? = nil,
            runKey: String? = nil, reportedState: String? = nil
        ) {
            self.source = source
            self.key = key
            self.event = event
            self.jobID = jobID
            self.bodyHash = bodyHash
            self.runKey = runKey
            self.reportedState = reportedState
        }
    }

    /// Remembers `record` unless its (source, key) is already known: the dedupe of webhooks
    /// and the replay check of signed callbacks and chat requests. Run it under the write lock
    /// (`Database.immediate`): of two copies arriving together one inserts, the other sees it.
    /// - Returns: the new row's id, or nil when the (source, key) was already recorded.
    @discardableResult
    package static func insertOnce(_ tx: Transaction, _ record: Record, now: Int64) throws -> Int64? {
        try tx.db.first(
            """
            INSERT INTO deliveries (source, delivery_id, event, job_id, received_at, body_hash, run_key, reported_state)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING RETURNING id
            """,
            [
                .text(record.source), .text(record.key), .text(record.event), .int(record.jobID), .int(now),
                .text(record.bodyHash), .text(record.runKey), .text(record.reportedState),
            ]
        ) { $0.int(0) }
    }

    /// Whether (source, key) was already recorded (a chat request checked before it is read).
    package static func seen(_ db: Database, source: String, key: String) throws -> Bool {
        try db.scalar(
            "SELECT 1 FROM deliveries WHERE source = ?1 AND delivery_id = ?2",
            [.text(source), .text(key)]) != nil
    }

    /// Keeps the body of a delivery that matched no job yet (applied once its run is known).
    package static func storePayload(_ tx: Transaction, id: Int64, payload: String) throws {
        try tx.db.run("UPDATE deliveries SET payload = ?2 WHERE id = ?1", [.int(id), .text(payload)])
    }

    /// Records which job a delivery was applied to.
    package static func attach(_ tx: Transaction, id: Int64, job: Int64) throws {
        try tx.db.run("UPDATE deliveries SET job_id = ?2 WHERE id = ?1", [.int(id), .int(job)])
    }

    /// A provider event stored before its run was known (`stored`).
    package struct Stored: Sendable {
        package var id: Int64
        package var event: String
        package var deliveryID: String
        package var reportedState: String?
    }

    /// The events of `projectID`'s integrations stored for `runKey` and applied to no job yet,
    /// in the order they arrived.
    package static func stored(_ db: Database, projectID: Int64, runKey: String) throws -> [Stored] {
        try db.query(
            """
            SELECT d.id, d.event, d.delivery_id, d.reported_state FROM deliveries d
            JOIN integrations i ON d.source = i.provider || ':' || (SELECT name FROM projects WHERE id = i.project_id)
            WHERE i.project_id = ?1 AND d.job_id IS NULL AND d.run_key = ?2 ORDER BY d.id
            """, [.int(projectID), .text(runKey)]
        ) {
            Stored(id: $0.int(0), event: $0.text(1), deliveryID: $0.text(2), reportedState: $0.optionalText(3))
        }
    }

    /// Forgets Slack signatures (of votes and deploys) older than twice the timestamp window: a
    /// request that old is refused by its timestamp anyway (a `Sweeper` step; Teams bodies and
    /// Mattermost trigger ids carry no checked timestamp, so their keys are kept).
    package static func forgetOldSlackSignatures(_ db: Database, now: Int64) throws {
        try db.run(
            "DELETE FROM deliveries WHERE source = 'slack' AND event IN ('vote', 'deploy') AND received_at < ?1",
            [.int(now - 2 * SignedRequest.window)])
    }

    /// What became of a provider webhook (`/metrics`: `draven_webhook_deliveries_total`).
    package enum Outcome: String, Sendable, CaseIterable {
        /// It moved a job (or a ref's awaiting jobs, or started plan runs).
        case applied
        /// Kept for a run draven does not know yet (202): applied once the run is known.
        case stored
        /// Verified, but about nothing draven follows.
        case ignored
    }

    /// Counts one webhook of `provider` for `project` as `outcome`, in the transaction that took
    /// it. (Refused and repeated ones, which change nothing, are counted as refusals are:
    /// `RefusalCounts.countForMetrics`.)
    package static func countOutcome(_ tx: Transaction, provider: String, project: String, _ outcome: Outcome) throws {
        try tx.db.run(
            """
            INSERT INTO delivery_outcomes (provider, project, outcome, count) VALUES (?1, ?2, ?3, 1)
            ON CONFLICT DO UPDATE SET count = count + 1
            """, [.text(provider), .text(project), .text(outcome.rawValue)])
    }

    /// Webhooks by provider, project and outcome (`/metrics`).
    package static func outcomeCounts(_ db: Database) throws
        -> [(provider: String, project: String, outcome: String, count: Int64)]
    {
        try db.query("SELECT provider, project, outcome, count FROM delivery_outcomes ORDER BY 1, 2, 3") {
            ($0.text(0), $0.text(1), $0.text(2), $0.int(3))
        }
    }
}
