/// Applying what a provider said about a run to its job: by webhook (`webhook-receive`), by the
/// deliverer recording a run id that events were already stored for, and by sweep's polling
/// fallback. Every path records the event on the job and moves it through the state machine.
package enum RunEvents {
    /// Applies events that arrived for `runKey` before the run was known (a webhook can beat
    /// the provider's answer to the dispatch), in the order they arrived.
    package static func applyStored(_ tx: Transaction, job: Int64, projectID: Int64, runKey: String, now: Int64) throws {
        let stored = try tx.db.query("""
            SELECT d.id, d.event, d.delivery_id, d.reported_state FROM deliveries d
            JOIN integrations i ON d.source = i.provider || ':' || (SELECT name FROM projects WHERE id = i.project_id)
            WHERE i.project_id = ?1 AND d.job_id IS NULL AND d.run_key = ?2 ORDER BY d.id
            """, [.int(projectID), .text(runKey)]) { ($0.int(0), $0.text(1), $0.text(2), $0.optionalText(3)) }
        for (id, event, delivery, state) in stored {
            try tx.db.run("UPDATE deliveries SET job_id = ?2 WHERE id = ?1", [.int(id), .int(job)])
            let detail: JSONObject = ["event": .string(event), "delivery": .string(delivery), "applied": "late (arrived before the run id)"]
            try StateMachine.note(tx, job: job, event: "provider", actor: "webhook (stored)", detail: detail, now: now)
            if let state = state.flatMap(JobState.init(rawValue:)) {
                try StateMachine.report(tx, job: job, state: state, actor: "webhook (stored)", detail: detail, now: now)
            }
        }
    }

    /// Applies a matched provider event to its job: records it, and moves the job if the event
    /// reports a state the job can move to. Returns the job's state afterwards. Sweep's polling
    /// fallback applies what it read from the provider's API through here too.
    package static func apply(_ tx: Transaction, job: Int64, event: ProviderEvent, actor: String, delivery: String, now: Int64) throws -> JobState {
        var detail = event.detail
        detail["event"] = .string(event.name)
        detail["delivery"] = .string(delivery)
        if let url = event.url { detail["url"] = .string(url) }
        try Job.recordProviderFacts(tx, job: job, runKey: event.runKey, url: event.url, sha: event.sha, now: now)
        try StateMachine.note(tx, job: job, event: "provider", actor: actor, detail: detail, now: now)
        if let state = event.state {
            try StateMachine.report(tx, job: job, state: state, actor: actor, detail: detail, now: now)
        }
        return try tx.db.first("SELECT state FROM jobs WHERE id = ?1", [.int(job)]) { JobState(rawValue: $0.text(0)) ?? .failed } ?? .failed
    }
}

/// Finds the job a provider event is about: by the run id the deliverer recorded, else by the
/// job id the run carries (pipeline variable or run name), within the integration's project.
package enum JobMatch {
    package static func find(_ db: Database, projectID: Int64, provider: String, event: ProviderEvent) throws -> Int64? {
        if let key = event.runKey {
            if key.hasPrefix("#") {  // a Bitbucket build number
                if let id = try db.scalar("SELECT id FROM jobs WHERE project_id = ?1 AND run_url LIKE ?2 ORDER BY id DESC LIMIT 1",
                                          [.int(projectID), .text("%/results/" + key.dropFirst())]) { return id }
            } else if let id = try db.scalar("SELECT id FROM jobs WHERE run_id = ?1 AND project_id = ?2 ORDER BY id DESC LIMIT 1",
                                             [.text(key), .int(projectID)]) {
                return id
            }
        }
        if let jobID = event.jobID {
            return try db.scalar("SELECT id FROM jobs WHERE id = ?1 AND project_id = ?2", [.int(jobID), .int(projectID)])
        }
        return nil
    }
}
