internal import Glibc

/// Delivers outbox rows: claims a row in a short transaction, makes the call outside any
/// transaction, and records the outcome in another. Used by `draven-deliver` (right after a
/// function answered) and by `draven sweep` (rows that are due again). Safe to run in any
/// number of processes at once: a row is claimed by one of them (`state = 'delivering'` with a
/// lease); a claim whose process died expires and the row is retried.
///
/// Dispatch outcomes: started → job `running` with the run id and URL; rejected (a 4xx that
/// will not change) → job `failed` with the provider's message (lock freed); retry (timeout,
/// 5xx, 429) → the row waits with exponential backoff and jitter, and after `maxAttempts` the
/// job fails. A dispatch is sent again only when its answer was lost or was a retryable error,
/// and the pipeline can recognise the repeat: it carries the same `JOB_ID`.
package struct Delivery {
    package let db: Database
    package let paths: Paths
    package let transport: any HTTPTransport
    package var maxAttempts = 6
    package var baseDelay: Int64 = 10
    package var maxDelay: Int64 = 600
    private var secrets: SecretsStore?
    /// Rows to deliver next because a row of their stream was just settled (`Delivery.event`).
    var following: [Int64] = []

    package init(db: Database, paths: Paths, transport: any HTTPTransport) {
        self.db = db
        self.paths = paths
        self.transport = transport
        if let n = Environment.get("DRAVEN_DISPATCH_MAX_ATTEMPTS").flatMap(Int.init), n > 0 { maxAttempts = n }
    }

    /// Rows due now (pending, or claimed by a process whose lease ran out), oldest first.
    package static func due(_ db: Database, now: Int64, limit: Int = 100) throws -> [Int64] {
        try Outbox.due(db, now: now, limit: limit)
    }

    /// Delivers `ids`, then any rows those deliveries enqueued (a freed lock starts the next job).
    /// - Returns: how many rows this call delivered or settled.
    @discardableResult
    package mutating func deliver(_ ids: [Int64], now: @escaping () -> Int64 = Clock.now) throws -> Int {
        var queue = ids
        var settled = 0
        while !queue.isEmpty {
            let id = queue.removeFirst()
            db.takeCommittedOutbox()
            if try deliverOne(id, now: now) { settled += 1 }
            queue += db.takeCommittedOutbox() + following
            following = []
        }
        return settled
    }

    private mutating func deliverOne(_ id: Int64, now: () -> Int64) throws -> Bool {
        guard let row = try claim(id, now: now()) else { return false }
        switch Outbox.Kind(rawValue: row.kind) {
        case .dispatch:
            try dispatch(row, now: now)
        case .notify:
            try notify(row, now: now)
        case .poll, .cancel:
            try runCall(row, now: now)
        case .check:
            try check(row, now: now)
        case .event:
            try event(row, now: now)
        case nil:
            try settle(row.id, state: .dead, error: "no deliverer for \(row.kind) rows", now: now())
        }
        return true
    }

    typealias Row = Outbox.Claimed

    /// Claims a due row for this process (a three-minute lease): two deliverers never both win.
    private func claim(_ id: Int64, now: Int64) throws -> Row? {
        try db.immediate { tx in try Outbox.claim(tx, id: id, lease: 180, now: now) }
    }

    private mutating func dispatch(_ row: Row, now: () -> Int64) throws {
        guard let jobID = row.jobID, let token = row.payload["fencing_token"]?.intValue,
            let job = try Job.find(db, id: jobID)
        else {
            return try settle(row.id, state: .dead, error: "dispatch row without a job", now: now())
        }
        // Only the lock holder of this token may be dispatched (a cancelled or superseded job is not).
        guard job.state == .dispatching, job.fencingToken == token else {
            let token = job.fencingToken.map(String.init) ?? "none"
            return try settle(
                row.id, state: .dead,
                error: "skipped: job \(jobID) is \(job.state.rawValue) (token \(token))", now: now())
        }
        let outcome: Dispatch.Outcome
        var redactor = Redactor.patternsOnly
        var uncontrolled: String?
        do {
            let target = try self.target(job, token: token)
            uncontrolled = RunControl.refusal(target)
            outcome = try call(Dispatch.request(for: target), target: target, redactor: &redactor)
        } catch let error as DispatchError {
            outcome = .rejected(error.description)
        } catch let error as SecretsError {
            switch error {
            case .notFound(let name):
                outcome = .rejected("secret \(name) is not in the secrets store (add it: draven secrets set \(name))")
            case .missing(let what):
                outcome = .rejected("secrets store not set up: \(what)")
            default:
                // A tampered, rolled-back or unreadable store is for the operator to fix; keep trying.
                outcome = .retry("secrets store: \(error)")
            }
        }
        try record(row, job: job, outcome: outcome.cleaned(by: redactor), uncontrolled: uncontrolled, now: now())
    }

    /// Sends the request, and once more the provider's fallback if the answer asks for it
    /// (`CIProvider.fallback`: GitHub Enterprise versions that refuse `return_run_details`).
    private mutating func call(
        _ request: OutboundRequest, target: Dispatch.Target,
        redactor: inout Redactor
    ) throws -> Dispatch.Outcome {
        let credential = try self.credential(for: request, redactor: &redactor)
        do {
            let response = try transport.send(request, credential: credential)
            if let again = try target.provider.ci.fallback(target, secret: request.secretName ?? "", after: response) {
                let answer = try transport.send(again, credential: credential)
                return Dispatch.outcome(provider: target.provider, repo: target.repo, response: answer)
            }
            return Dispatch.outcome(provider: target.provider, repo: target.repo, response: response)
        } catch let error as TransportError {
            return error.retryable ? .retry(error.message) : .rejected(error.message)
        }
    }

    /// Sends a notification or an approval request (Slack Web API). Its outcome never changes the job: a final refusal
    /// marks the row
    /// dead, anything else is retried with the same backoff as dispatches.
    private mutating func notify(_ row: Row, now: () -> Int64) throws {
        var error: String?
        var retry = false
        var posted: (channel: String, ts: String)?
        let slackApproval = row.payload["channel"]?.stringValue == ApprovalMessages.channel
        var redactor = Redactor.patternsOnly
        do {
            let request: OutboundRequest
            if slackApproval {
                request = try ApprovalMessages.request(db, row.payload)
            } else {
                let smtp = try Settings.get(db, "smtp").flatMap { try? JSON.parse($0) }?.objectValue
                request = try Notifications.request(row.payload, smtp: smtp, now: now())
            }
            let response = try transport.send(request, credential: try credential(for: request, redactor: &redactor))
            let said = Dispatch.providerMessage(try? JSON.parse(response.body)).map { ": " + $0 } ?? ""
            switch response.status {
            case 200...299 where slackApproval: (error, retry, posted) = ApprovalMessages.outcome(response)
            case 200...299: break
            case 408, 425, 429, 500...599:
                retry = true
                error = "\(request.redactedURL) answered \(response.status)\(said)"
            default: error = "\(request.redactedURL) refused the notification (\(response.status))\(said)"
            }
        } catch let e as TransportError {
            retry = e.retryable
            error = e.message
        } catch let e as DispatchError {
            error = e.description
        } catch let e as SecretsError {
            error = "secrets store: \(e)"
            if case .notFound = e {} else { retry = true }
        }
        error = error.map(redactor.clean)
        let at = now()
        try db.immediate { tx in
            if let posted, let job = row.jobID {
                try ApprovalMessages.remember(tx, job: job, channel: posted.channel, ts: posted.ts)
            }
            guard let error else { return try settle(tx, row.id, state: .delivered, error: nil, now: at) }
            if retry && row.attempts < maxAttempts {
                try retryLater(tx, row, error: error, now: at)
            } else {
                try settle(tx, row.id, state: .dead, error: error, now: at)
                try Audit.record(
                    tx, at: at, actor: "draven-deliver", action: "notify.failed", subject: "job/\(row.jobID ?? 0)",
                    outcome: "failed", detail: ["channel": row.payload["channel"] ?? .null, "error": .string(error)])
            }
        }
    }

    /// A plan's HTTP check: GET the URL that the secret `url_secret` holds (it is never logged:
    /// errors name the step), then record the answer and move the run on in one transaction
    /// (`PlanEngine.checkAnswered`). A failed request is an answer too; the step's `every` and
    /// timeout decide what comes next, so the row is never retried.
    private mutating func check(_ row: Row, now: () -> Int64) throws {
        guard let run = row.payload["run_id"]?.intValue, let step = row.payload["step"]?.stringValue,
            let secret = row.payload["url_secret"]?.stringValue
        else { return try settle(row.id, state: .dead, error: "check row without a run step", now: now()) }
        let request = OutboundRequest(
            method: "GET", url: "check of plan run \(run) step \(step)", headers: [], body: [], credential: .url,
            secretName: secret, timeoutMS: 10_000)
        var status: Int?
        var error: String?
        var redactor = Redactor.patternsOnly
        do {
            let credential = try credential(for: request, redactor: &redactor)
            status = try transport.send(request, credential: credential).status
        } catch let e as TransportError {
            // Not libcurl's message: it names the host and port, and the URL is the secret.
            error = e.timedOut ? "no answer within 10 s" : "no answer (the request failed)"
        } catch let e as SecretsError {
            error = "secrets store: \(e)"
        }
        let at = now()
        try db.immediate { tx in
            try settle(tx, row.id, state: .delivered, error: error, now: at)
            try PlanEngine.checkAnswered(tx, run: run, step: step, status: status, error: error, now: at)
        }
    }

    /// The credential `request` is sent with, from the secrets store; `redactor` learns it, to
    /// remove it from whatever is kept of the answer (`Redactor`).
    mutating func credential(for request: OutboundRequest, redactor: inout Redactor) throws -> SecretBytes? {
        let credential = try request.secretName.map { try secretsStore().secret($0) }
        redactor = Redactor([credential])
        return credential
    }

    mutating func secretsStore() throws -> SecretsStore {
        if let secrets { return secrets }
        let store = try SecretsStore(SecretsPaths(paths), db: db)
        secrets = store
        return store
    }

    func target(_ job: Job, token: Int64) throws -> Dispatch.Target {
        guard let row = try HookIntegration.settings(db, projectID: job.projectID) else {
            throw DispatchError("project \(job.project) has no integration")
        }
        guard let provider = Provider(rawValue: row.0) else {
            throw DispatchError("project \(job.project) has an unknown provider \(row.0)")
        }
        var target = Dispatch.Target(
            jobID: job.id, environment: job.environment, ref: job.ref,
            refKind: RefKind(rawValue: job.refKind) ?? .branch,
            sha: job.sha, fencingToken: token, integration: (try? JSON.parse(row.3))?.objectValue ?? [:],
            provider: provider, repo: row.1, method: row.2, kind: job.kind)
        target.traceparent = job.traceparent
        return target
    }

    /// - Parameter uncontrolled: why draven cannot poll or cancel this run (`RunControl.refusal`),
    ///   said once in the job's history when it starts.
    private func record(_ row: Row, job: Job, outcome: Dispatch.Outcome, uncontrolled: String?, now: Int64) throws {
        try db.immediate { tx in
            switch outcome {
            case .started(let runID, let url):
                try settle(tx, row.id, state: .delivered, error: nil, now: now)
                try Job.recordRun(tx, job: job.id, runID: runID, url: url)
                try StateMachine.transition(
                    tx, job: job.id, to: .running, actor: "draven-deliver",
                    detail: ["run_id": runID.map(JSON.string) ?? .null, "run_url": url.map(JSON.string) ?? .null],
                    now: now)
                if let uncontrolled {
                    let why =
                        "not polled or cancelled by draven: \(uncontrolled); "
                        + "it follows the run by webhooks and the lease"
                    try StateMachine.note(
                        tx, job: job.id, event: "provider", actor: "draven-deliver",
                        detail: ["poll": .string(why)], now: now)
                }
                if let runID {
                    try RunEvents.applyStored(tx, job: job.id, projectID: job.projectID, runKey: runID, now: now)
                }
                // Cancelled while the dispatch was on its way: the run started anyway, so ask the provider to stop it.
                if let runID, try Job.state(tx.db, id: job.id) == .cancelled {
                    try Outbox.enqueue(
                        tx, kind: .cancel, job: job.id, payload: ["job_id": .int(job.id), "run_id": .string(runID)],
                        now: now)
                }
            case .rejected(let why):
                try settle(tx, row.id, state: .dead, error: why, now: now)
                try StateMachine.transition(
                    tx, job: job.id, to: .failed, actor: "draven-deliver", detail: ["reason": .string(why)], now: now)
            case .retry(let why) where row.attempts >= maxAttempts:
                let reason = "gave up after \(row.attempts) attempts: \(why)"
                try settle(tx, row.id, state: .dead, error: reason, now: now)
                try StateMachine.transition(
                    tx, job: job.id, to: .failed, actor: "draven-deliver", detail: ["reason": .string(reason)], now: now
                )
            case .retry(let why):
                let delay = try retryLater(tx, row, error: why, now: now)
                try Audit.record(
                    tx, at: now, actor: "draven-deliver", action: "dispatch.retry", subject: "job/\(job.id)",
                    outcome: "retry",
                    detail: ["attempt": .int(Int64(row.attempts)), "in_seconds": .int(delay), "error": .string(why)])
            }
        }
    }

    /// Puts a row back to wait for its next attempt (`backoff`). Returns the delay in seconds.
    @discardableResult
    func retryLater(_ tx: Transaction, _ row: Row, error: String, now: Int64) throws -> Int64 {
        let delay = backoff(attempt: row.attempts)
        try Outbox.reschedule(tx, id: row.id, at: now + delay, error: error)
        return delay
    }

    /// Exponential backoff with jitter: base·2^(n−1), capped, then a random 50–100 % of it.
    func backoff(attempt: Int) -> Int64 {
        let exp = min(maxDelay, baseDelay << Int64(min(max(attempt - 1, 0), 20)))
        let jitter = Int64(Sodium.randomBytes(2).reduce(0) { $0 << 8 | Int($1) }) % (exp / 2 + 1)
        return exp - jitter
    }

    func settle(_ id: Int64, state: OutboxState, error: String?, now: Int64) throws {
        try db.immediate { tx in try settle(tx, id, state: state, error: error, now: now) }
    }

    func settle(_ tx: Transaction, _ id: Int64, state: OutboxState, error: String?, now: Int64) throws {
        try Outbox.settle(tx, id: id, state: state, error: error, now: now)
    }
}
