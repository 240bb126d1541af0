/// Delivering `poll` and `cancel` rows (`RunControl`): calls about a run that already exists.
///
/// A poll's answer is applied to the job as the provider's webhook would have been
/// (`RunEvents.apply`: recorded, and the job moved if the run reached a state it can move
/// to); a cancel's answer is only recorded. Neither is retried forever: a refusal or the last
/// failed attempt marks the row dead and is noted in the job's history.
extension Delivery {
    mutating func runCall(_ row: Row, now: () -> Int64) throws {
        guard let jobID = row.jobID, let runID = row.payload["run_id"]?.stringValue,
            let job = try Job.find(db, id: jobID),
            let action = RunControl.Action(rawValue: row.kind)
        else {
            return try settle(row.id, state: .dead, error: "\(row.kind) row without a job or run", now: now())
        }
        if action == .poll, job.state != .running {
            return try settle(row.id, state: .dead, error: "skipped: job \(jobID) is \(job.state.rawValue)", now: now())
        }
        var failure: (error: String, retry: Bool)?
        var event: ProviderEvent?
        var provider = "provider"
        var redactor = Redactor.patternsOnly
        do {
            let target = try self.target(job, token: job.fencingToken ?? 0)
            provider = target.provider.rawValue
            let request = try RunControl.request(action, runID: runID, target: target)
            let response = try transport.send(request, credential: try credential(for: request, redactor: &redactor))
            let said = Dispatch.providerMessage(try? JSON.parse(response.body)).map { ": " + $0 } ?? ""
            switch response.status {
            case 200...299 where action == .poll:
                event = RunControl.event(provider: target.provider, body: response.body)
                if event == nil { failure = ("\(target.provider) answered a run that cannot be read", false) }
            case 200...299: break
            case 408, 425, 429, 500...599: failure = ("\(request.redactedURL) answered \(response.status)\(said)", true)
            default:
                failure = ("\(request.redactedURL) refused the \(action.rawValue) (\(response.status))\(said)", false)
            }
        } catch let e as TransportError {
            failure = (e.message, e.retryable)
        } catch let e as DispatchError {
            failure = (e.description, false)
        } catch let e as SecretsError {
            failure = ("secrets store: \(e)", { if case .notFound = e { false } else { true } }())
        }
        failure = failure.map { (redactor.clean($0.error), $0.retry) }
        let at = now()
        try db.immediate { tx in
            if let failure {
                if failure.retry && row.attempts < maxAttempts {
                    try retryLater(tx, row, error: failure.error, now: at)
                    return
                }
                try settle(tx, row.id, state: .dead, error: failure.error, now: at)
                try StateMachine.note(
                    tx, job: jobID, event: "provider", actor: "draven-deliver",
                    detail: [action.rawValue: .string("failed: " + failure.error)], now: at)
                return
            }
            try settle(tx, row.id, state: .delivered, error: nil, now: at)
            guard let event else {
                return try StateMachine.note(
                    tx, job: jobID, event: "provider", actor: "draven-deliver",
                    detail: ["cancel": .string("the provider accepted the cancel of run \(runID)")], now: at)
            }
            _ = try RunEvents.apply(
                tx, job: jobID, event: event, actor: "\(provider) poll", delivery: "poll:\(row.id)", now: at)
        }
    }
}
