package import DravenCore

/// `POST /hooks/github|gitlab|bitbucket` — provider webhooks; `POST /hooks/runner` — the
/// runner's signed final result. Each is verified with its integration's secret before it is
/// believed, deduplicated by delivery id and body hash, and applied to its job in one
/// transaction; the provider gets its answer right after the commit, and outbound calls
/// (notifications, the next queued job's dispatch) happen after it.
///
/// Answers: 200 applied, duplicate or irrelevant (`ping`, `push`, …); 202 stored for a run draven
/// does not know (yet); 401 unknown integration or bad signature; 409 stale fencing token; 415 a
/// body that is neither JSON nor GitHub's form encoding (checked first).
package enum WebhookReceive: Function {
    package static let name = "webhook-receive"
    /// GitHub and GitLab send up to 25 MB.
    package static let maxBodyBytes = 25 << 20

    typealias Handler = @Sendable (Request, Context) throws -> Response
    static let router = Router<Handler>([
        (Route("POST", "/hooks/github"), { @Sendable in try provider($0, $1, serving: [.github]) }),
        (Route("POST", "/hooks/gitlab"), { @Sendable in try provider($0, $1, serving: [.gitlab]) }),
        (
            Route("POST", "/hooks/bitbucket"),
            { @Sendable in
                try provider($0, $1, serving: [.bitbucketCloud, .bitbucketDataCenter])
            }
        ),
        (Route("POST", "/hooks/runner"), { @Sendable in try RunnerCallback.respond($0, $1) }),
    ])

    package static func respond(to request: Request, context: Context) throws -> Response {
        let (handler, _) = try router.resolve(request)
        return try handler(request, context)
    }

    /// A provider webhook for one of `providers` (those whose integrations this route serves); the
    /// integration's provider (`CIProvider`) verifies and reads it.
    static func provider(_ request: Request, _ context: Context, serving providers: [Provider]) throws -> Response {
        // The body's type first: a body draven cannot read is 415 whatever else is wrong with it
        // (without `?project=` its repository could not even be read to find the integration).
        // A refusal from here on is counted for /metrics (`webhooks refused`: a misconfigured secret).
        let route = String(request.path.dropFirst("/hooks/".count))
        context.countRefusal = { tx in
            try RefusalCounts.countForMetrics(tx, .refusedWebhook(provider: route, project: ""))
        }
        try WebhookPayload.checkMediaType(request)
        let db = try context.db()
        let integration = try HookIntegration.find(
            db, providers: providers, project: request.queryItems["project"], body: request.body,
            request: request)
        let ci = integration.provider.ci
        context.subject = "\(integration.project)/\(ci.hookRoute)"
        let provider = integration.provider.rawValue
        context.countRefusal = { tx in
            try RefusalCounts.countForMetrics(tx, .refusedWebhook(provider: provider, project: integration.project))
        }
        let signedID = try integration.authenticate(request, db: db, paths: context.paths, now: context.now)
        let eventName = request.header(ci.eventHeader) ?? ""
        let event: ProviderEvent
        var moves: [PushEvent.Move] = []
        var commits: [(sha: String, at: Int64)] = []
        if ci.maps(event: eventName) {
            // Provider bodies are read last-duplicate-wins, as the providers' own consumers read them.
            let payload = try WebhookPayload.decode(request.body, request: request, duplicateKeys: .lastWins)
            // Every provider sends an object; anything else could never be matched to a run.
            guard payload.objectValue != nil else { throw DravenError.malformed("a provider's event is a JSON object") }
            event = ci.parse(event: eventName, payload: payload)
        } else {
            event = .irrelevant(eventName)
            // A push is scanned for the refs it moved and their new heads (a job awaiting approval
            // may take one); one that cannot be read is recorded and ignored like any other event
            // draven does not map.
            if ci.isPush(event: eventName), let json = try? WebhookPayload.json(request.body, request: request) {
                moves = ci.pushMoves(json)
                commits = Commits.times(in: json, shas: moves.map(\.sha))  // lead time counts from them
            }
        }
        // BLAKE2b: a dedupe key, not a signature; ~4x cheaper than SHA-256 over a 7 KB body.
        let bodyHash = Sodium.hashHex(request.body)
        let deliveryID =
            signedID
            ?? ci.deliveryHeaders.lazy.compactMap { request.header($0) }.first { !$0.isEmpty } ?? "blake2b:" + bodyHash
        let source = "\(integration.provider):\(integration.project)"

        let deliver = { (tx: Transaction) throws -> (status: Int, body: JSONObject) in
            // Dedupe first, under the write lock: of two copies arriving together one inserts, the other sees it.
            let record = Deliveries.Record(
                source: source, key: deliveryID, event: eventName, bodyHash: bodyHash,
                runKey: event.runKey, reportedState: event.state?.rawValue)
            guard let delivery = try Deliveries.insertOnce(tx, record, now: context.now) else {
                return (200, ["status": "duplicate", "delivery": .string(deliveryID)])
            }
            try Commits.record(tx, project: integration.projectID, commits)
            let moved = try PushEvent.apply(
                tx, projectID: integration.projectID, moves: moves, delivery: deliveryID, now: context.now)
            // A push may start deploy plans whose triggers watch the ref (once: this delivery is new).
            let plans = try PlanEngine.startOnPush(
                tx, project: integration.project, moves: moves, delivery: deliveryID, now: context.now)
            if !moved.isEmpty || !plans.runs.isEmpty || !plans.refused.isEmpty {
                var answer: JSONObject = ["status": "applied", "event": .string(eventName)]
                if !moved.isEmpty { answer["sha_changed"] = .array(moved.map(JSON.int)) }
                if !plans.runs.isEmpty { answer["plan_runs"] = .array(plans.runs.map(JSON.int)) }
                if !plans.refused.isEmpty {
                    var refused = JSONObject()
                    for (plan, why) in plans.refused.sorted(by: { $0.key < $1.key }) { refused[plan] = .string(why) }
                    answer["plans_refused"] = .object(refused)
                }
                return (200, answer)
            }
            guard event.relevant else { return (200, ["status": "ignored", "event": .string(eventName)]) }
            guard
                let job = try JobMatch.find(
                    tx.db, projectID: integration.projectID, provider: integration.provider, event: event)
            else {
                // Kept with its run key: applied when the deliverer records this run id.
                let payload = String(decoding: request.body.prefix(1 << 20), as: UTF8.self)
                try Deliveries.storePayload(tx, id: delivery, payload: payload)
                return (202, ["status": "stored", "detail": "no job is known for this run yet"])
            }
            try Deliveries.attach(tx, id: delivery, job: job)
            let state = try RunEvents.apply(
                tx, job: job, event: event, actor: "\(integration.provider) webhook", delivery: deliveryID,
                now: context.now)
            return (200, ["status": "applied", "job_id": .int(job), "state": .string(state.rawValue)])
        }
        let result = try db.immediate { tx -> (status: Int, body: JSONObject) in
            let answer = try deliver(tx)
            let project = integration.project
            switch answer.body["status"]?.stringValue {
            case "duplicate":  // a repeat changes nothing: counted as refusals are
                try RefusalCounts.countForMetrics(tx, .repeatedWebhook(provider: provider, project: project))
            case "ignored": try Deliveries.countOutcome(tx, provider: provider, project: project, .ignored)
            case "stored": try Deliveries.countOutcome(tx, provider: provider, project: project, .stored)
            default: try Deliveries.countOutcome(tx, provider: provider, project: project, .applied)
            }
            return answer
        }
        return Response(status: result.status, json: .object(result.body))
    }
}
