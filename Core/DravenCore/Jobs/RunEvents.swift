/// Applying what a provider said about a run to its job: by webhook (`webhook-receive`), by the
/// deliverer recording a run id that events were already stored for, and by sweep's polling
/// fallback. Every path records the event on the job and moves it through the state machine.
package enum RunEvents {
    /// Applies events that arrived for `runKey` before the run was known (a webhook can beat
    /// the provider's answer to the dispatch), in the order they arrived.
    package static func applyStored(_ tx: Transaction, job: Int64, projectID: Int64, runKey: String, now: Int64) throws
    {
        for stored in try Deliveries.stored(tx.db, projectID: projectID, runKey: runKey) {
            try Deliveries.attach(tx, id: stored.id, job: job)
            let detail: JSONObject = [
                "event": .string(stored.event), "delivery": .string(stored.deliveryID),
                "applied": "late (arrived before the run id)",
            ]
            try StateMachine.note(tx, job: job, event: "provider", actor: "webhook (stored)", detail: detail, now: now)
            if let state = stored.reportedState.flatMap(JobState.init(rawValue:)) {
                try StateMachine.report(tx, job: job, state: state, actor: "webhook (stored)", detail: detail, now: now)
            }
        }
    }

    /// Applies a matched provider event to its job: records it, and moves the job if the event
    /// reports a state the job can move to. Returns the job's state afterwards. Sweep's polling
    /// fallback applies what it read from the provider's API through here too.
    package static func apply(
        _ tx: Transaction, job: Int64, event: ProviderEvent, actor: String, delivery: String, now: Int64
    ) throws -> JobState {
        var detail = event.detail
        detail["event"] = .string(event.name)
        detail["delivery"] = .string(delivery)
        if let url = event.url { detail["url"] = .string(url) }
        try Job.recordProviderFacts(tx, job: job, runKey: event.runKey, url: event.url, sha: event.sha, now: now)
        try StateMachine.note(tx, job: job, event: "provider", actor: actor, detail: detail, now: now)
        if let state = event.state {
            try StateMachine.report(tx, job: job, state: state, actor: actor, detail: detail, now: now)
        }
        return try Job.state(tx.db, id: job) ?? .failed
    }
}

/// Finds the job a provider event is about: by the run id the deliverer recorded, else by the
/// job id the run carries (pipeline variable or run name), within the integration's project.
package enum JobMatch {
    package static func find(
        _ db: Database, projectID: Int64, provider: Provider,
        event: ProviderEvent
    ) throws -> Int64? {
        if let key = event.runKey {
            if key.hasPrefix("#") {  // a Bitbucket build number
                let suffix = "/results/" + key.dropFirst()
                if let id = try Job.latest(db, projectID: projectID, runURLEnding: suffix) { return id }
            } else if let id = try Job.latest(db, projectID: projectID, runID: key) {
                return id
            }
        }
        if let jobID = event.jobID, try Job.exists(db, id: jobID, projectID: projectID) { return jobID }
        return nil
    }
}
