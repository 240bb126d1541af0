package import DravenCore

/// The routes of plan runs, in the `plans` function:
/// - `POST /api/v1/plans/{id}/runs` `{"inputs"?, "reason"?}` — start a run of the plan's newest
///   version (`PlanEngine.start`); `Idempotency-Key` as for deploys. 201 with the run (200 replayed).
/// - `GET /api/v1/runs/{id}` — the run (`PlanRuns.Run.json`); `GET /api/v1/runs?status=&limit=` —
///   runs newest first; `status` is a run status or `stuck` (running with no progress for 30
///   minutes, or a step past its timeout).
/// - `POST /api/v1/runs/{id}/steps/{step}/approvals` `{"decision": "approve"|"reject", "comment"?}`
///   — a vote on an approval step (201).
/// - `POST /api/v1/runs/{id}/steps/{step}/retry` — start a failed step of a paused or failed run again.
/// - `POST /api/v1/runs/{id}/cancel` `{"reason"?}`.
///
/// Starting, retrying and cancelling need a `deploy` grant on every environment the plan's deploy
/// and diagnostic steps name; reading a run, a `read` grant on one of them (a run you may not
/// read answers 404, like an unknown id); voting, what the step asks (`PlanEngine.vote`).
package enum PlanRunRoutes {
    package static let routes: [(Route, RouteHandler)] = [
        (Route("POST", "/api/v1/plans/{id}/runs"), start),
        (Route("GET", "/api/v1/runs"), list),
        (Route("GET", "/api/v1/runs/{id}"), show),
        (Route("POST", "/api/v1/runs/{id}/steps/{step}/approvals"), vote),
        (Route("POST", "/api/v1/runs/{id}/steps/{step}/retry"), retry),
        (Route("POST", "/api/v1/runs/{id}/cancel"), cancel),
    ]

    /// Runs without progress for this long are `stuck`.
    static let stuckAfter: Int64 = 30 * 60

    static func start(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let id = params["id"] ?? ""
        context.subject = "plan/\(id)"
        let input = try BodyFields(try request.optionalJSONBody(), fields: ["inputs", "reason"], of: "a plan run")
        let inputs = try input.object("inputs")
        let reason = try input.string("reason", required: false, max: 1000) ?? ""
        let (run, replayed) = try start(
            id, inputs: inputs, reason: reason, by: principal, idempotencyKey: { try Trigger.idempotencyKey(request) },
            context)
        let db = try context.db()
        var headers = [("Location", "/api/v1/runs/\(run)")]
        if replayed { headers.append(("Idempotent-Replayed", "true")) }
        return Response(status: replayed ? 200 : 201, json: .object(try view(db, run, context)), headers: headers)
    }

    /// A run of plan `id`'s latest version started by `principal`: what `POST /api/v1/plans/{id}/runs`
    /// and chat's `plan run` do. The plan and the grants are checked, then the key
    /// (`idempotencyKey`, read at that point), then the run starts in one transaction.
    /// - Parameter replay: a signed chat request's replay key, remembered in the run's transaction
    ///   (`deliveries`, event `plan_run`), so a copy of the request starts nothing.
    /// - Throws: what `PlanEngine.start` throws; `.notFound` (no such plan), `.badSignature` (a replay).
    static func start(
        _ id: String, inputs: JSONObject, reason: String, by principal: Principal,
        idempotencyKey: () throws -> String?, replay: ChatVerification.Replay? = nil, _ context: Context
    ) throws -> (id: Int64, replayed: Bool) {
        let db = try context.db()
        let plan = try Plans.current(db, id: id)
        try PlanEngine.requireGrants(db, plan, principal)
        let key = try idempotencyKey()
        return try db.immediate { tx in
            if let replay {
                let record = Deliveries.Record(source: replay.source, key: replay.key, event: "plan_run")
                guard try Deliveries.insertOnce(tx, record, now: context.now) != nil else {
                    throw DravenError.badSignature("this signed request was already used (replay)")
                }
            }
            return try PlanEngine.start(
                tx, plan: plan, inputs: inputs, reason: reason, by: principal, idempotencyKey: key, now: context.now)
        }
    }

    static func show(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, run, _) = try readable(request, params, context)
        return Response(status: 200, json: .object(try view(db, run.id, context)))
    }

    static func list(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        let query = request.queryItems
        var status: PlanRuns.Status?
        var stuck = false
        if let raw = query["status"] {
            if raw == "stuck" {
                stuck = true
            } else {
                guard let s = PlanRuns.Status(rawValue: raw) else {
                    let all = PlanRuns.Status.allCases.map(\.rawValue) + ["stuck"]
                    throw DravenError.invalidField(
                        pointer: "status", reason: "must be one of \(all.joined(separator: ", "))")
                }
                status = s
            }
        }
        var limit = 50
        if let raw = query["limit"] {
            guard let n = Int(raw), (1...500).contains(n) else {
                throw DravenError.invalidField(pointer: "limit", reason: "must be an integer from 1 to 500")
            }
            limit = n
        }
        let runs = try PlanRuns.list(
            db, status: status, stuckBefore: stuck ? context.now - stuckAfter : nil, now: context.now, limit: limit
        ).filter { try $0.plan.readable(db, by: principal) }
        let items = try runs.map { JSON.object(try view(db, $0, context)) }
        return Response(status: 200, json: .object(["runs": .array(items)]))
    }

    static func vote(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, run, principal) = try readable(request, params, context)
        let step = params["step"] ?? ""
        let (decision, approvals, required) = try cast(
            try request.jsonBody(), run: run.id, step: step, by: principal, context)
        let after = try PlanRuns.require(db, id: run.id)
        let status = after.steps.first { $0.id == step }?.status.rawValue ?? ""
        return Response(
            status: 201,
            json: .object([
                "run_id": .int(run.id), "step": .string(step), "decision": .string(decision),
                "approvals": .int(Int64(approvals)), "required": .int(Int64(required)), "step_status": .string(status),
                "run_status": .string(after.status.rawValue),
            ]))
    }

    /// A vote `{"decision": "approve"|"reject", "comment"?}` on a run's approval step: what the
    /// API's route and the console's vote form do (`PlanEngine.vote`).
    static func cast(_ body: JSON, run: Int64, step: String, by principal: Principal, _ context: Context) throws
        -> (decision: String, approvals: Int, required: Int)
    {
        let input = try BodyFields(body, fields: ["decision", "comment"], of: "a vote")
        let decision = try input.string("decision", required: true, max: 16)!
        guard decision == "approve" || decision == "reject" else {
            throw DravenError.invalidField(pointer: "/decision", reason: "must be \"approve\" or \"reject\"")
        }
        let comment = try input.string("comment", required: false, max: 1000) ?? ""
        let (approvals, required) = try context.db().immediate { tx in
            try PlanEngine.vote(
                tx, run: run, step: step, by: principal, approve: decision == "approve", comment: comment,
                now: context.now)
        }
        return (decision, approvals, required)
    }

    static func retry(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, run, principal) = try readable(request, params, context)
        _ = try BodyFields(try request.optionalJSONBody(), fields: [], of: "a retry")
        try db.immediate { tx in
            try PlanEngine.retry(tx, run: run.id, step: params["step"] ?? "", by: principal, now: context.now)
        }
        return Response(status: 200, json: .object(try view(db, run.id, context)))
    }

    static func cancel(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, run, principal) = try readable(request, params, context)
        let input = try BodyFields(try request.optionalJSONBody(), fields: ["reason"], of: "a cancel")
        let reason = try input.string("reason", required: false, max: 1000) ?? ""
        try db.immediate { tx in
            try PlanEngine.cancel(tx, run: run.id, by: principal, reason: reason, now: context.now)
        }
        return Response(status: 200, json: .object(try view(db, run.id, context)))
    }

    // MARK: -

    /// The run `{id}` names, if the caller may read it (else 404, as for an unknown id).
    static func readable(_ request: Request, _ params: [String: String], _ context: Context) throws -> (
        Database, PlanRuns.Run, Principal
    ) {
        let principal = try Authenticator.authenticate(request, context)
        let id = try params.id("id")
        context.subject = "plan_run/\(id)"
        let db = try context.db()
        guard let run = try PlanRuns.find(db, id: id), try run.plan.readable(db, by: principal) else {
            throw DravenError.notFound(what: "no plan run \(id)")
        }
        return (db, run, principal)
    }

    static func view(_ db: Database, _ id: Int64, _ context: Context) throws -> JSONObject {
        try view(db, try PlanRuns.require(db, id: id), context)
    }

    static func view(_ db: Database, _ run: PlanRuns.Run, _ context: Context) throws -> JSONObject {
        var votes: [String: [PlanRuns.Vote]] = [:]
        for (step, row) in zip(run.plan.steps, run.steps) {
            if case .approval = step.action { votes[row.id] = try PlanRuns.votes(db, run: run.id, step: row.id) }
        }
        return run.json(votes: votes, means: try PlanRuns.meanDurations(db, plan: run.plan.id), now: context.now)
    }
}
