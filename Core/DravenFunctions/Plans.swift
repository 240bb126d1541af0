package import DravenCore

/// The `plans` function: deploy plans and their runs.
///
/// `POST /api/v1/plans` (body: a plan document, README "Deploy plans") applies a plan: 201 with
/// the new version, 200 when the document is the plan's latest version unchanged (nothing is
/// written). Applying needs a `deploy` grant on every environment the plan's deploy and
/// diagnostic steps name (on `*`/`*` for a plan that names none). The document is read and
/// checked first (422 naming the key), then the grants (403), then what it names in the store
/// (422 naming the key: unknown projects, environments, groups), so a caller without the grants
/// learns nothing of what exists. A `version` that is neither the latest nor the next is a 409.
///
/// `GET /api/v1/plans` lists the latest version of each plan the caller may read; `GET
/// /api/v1/plans/{id}` (`?version=N` for an earlier one) answers one. Reading a plan needs a
/// `read` grant on at least one environment its deploy and diagnostic steps name (any API token
/// for a plan that names none); a plan the caller may not read is a 404, as one that does not
/// exist. The answer: `{"id", "version", "digest", "applied_at", "applied_by", "document"}`,
/// `document` being the canonical plan (`Plan.json`).
///
/// `POST /api/v1/plans/{id}/explain` `{"inputs"?}` explains a run of the latest version as the
/// caller would start it (`PlanExplain`: a dry run saying, step by step, where policy, grants,
/// approvals or a held lock would stop it); it needs what reading the plan needs, and writes nothing.
///
/// The run routes (`/api/v1/plans/{id}/runs`, `/api/v1/runs…`) are in `PlanRunRoutes.swift`:
/// `router` is `planRoutes` followed by theirs.
package enum PlanAPI: RoutedFunction {
    package static let name = "plans"
    /// A plan document of 100 steps with long templates fits well within this.
    package static let maxBodyBytes = 256 * 1024

    package static let router = Router<RouteHandler>(planRoutes + PlanRunRoutes.routes)

    static let planRoutes: [(Route, RouteHandler)] = [
        (Route("POST", "/api/v1/plans"), apply),
        (Route("GET", "/api/v1/plans"), list),
        (Route("GET", "/api/v1/plans/{id}"), show),
        (Route("POST", "/api/v1/plans/{id}/explain"), explain),
    ]

    static func apply(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let document = try request.jsonBody()
        if let id = document["id"]?.stringValue { context.subject = "plan/\(id.capped(128).text)" }
        let plan = try Plan.parse(document)
        let db = try context.db()
        try requireApply(db, principal, plan)
        try plan.checkStore(db)
        let applied = try db.immediate { tx in try Plans.apply(tx, plan, by: principal.handle, now: context.now) }
        let stored = applied.stored
        return Response(
            status: applied.created ? 201 : 200, json: try stored.json(),
            headers: [("Location", "/api/v1/plans/\(stored.id)?version=\(stored.version)")])
    }

    static func list(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        var plans: [JSON] = []
        for stored in try Plans.list(db) {
            let plan = try stored.plan()
            guard try plan.readable(db, by: principal) else { continue }
            plans.append(
                .object([
                    "id": .string(stored.id), "version": .int(stored.version), "description": .string(plan.description),
                    "steps": .int(Int64(plan.steps.count)), "digest": .string(stored.digest),
                    "applied_at": .string(Clock.rfc3339(stored.appliedAt)), "applied_by": .string(stored.appliedBy),
                ]))
        }
        return Response(status: 200, json: .object(["plans": .array(plans)]))
    }

    static func show(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let stored = try readable(request, params, principal, context)
        return Response(status: 200, json: try stored.json())
    }

    static func explain(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let stored = try readable(request, params, principal, context)
        let input = try BodyFields(try request.optionalJSONBody(), fields: ["inputs"], of: "an explain request")
        let inputs = try input.object("inputs")
        let explained = try PlanExplain.explain(try context.db(), try stored.plan(), inputs: inputs, by: principal)
        return Response(status: 200, json: explained.json)
    }

    // MARK: - grants

    /// The plan `params["id"]` names (its `?version=` or latest), if the caller may read it.
    /// - Throws: `.notFound` (no such plan or version, or not readable), `.invalidField` (`version`).
    static func readable(
        _ request: Request, _ params: [String: String], _ principal: Principal, _ context: Context
    ) throws -> Plans.Stored {
        let id = params["id"] ?? ""
        context.subject = "plan/\(id.capped(128).text)"
        let db = try context.db()
        var stored: Plans.Stored?
        if let raw = request.queryItems["version"] {
            guard let version = Int64(raw), version >= 1 else {
                throw DravenError.invalidField(pointer: "version", reason: "must be a positive integer")
            }
            stored = try Plans.load(db, id: id, version: version)
        } else {
            stored = try Plans.latest(db, id: id)
        }
        guard let stored, try stored.plan().readable(db, by: principal) else {
            throw DravenError.notFound(what: "no plan \(id.capped(128).text)")
        }
        return stored
    }

    /// - Throws: `.forbidden` naming the first environment without a `deploy` grant.
    static func requireApply(_ db: Database, _ principal: Principal, _ plan: Plan) throws {
        let targets = plan.targets
        if targets.isEmpty { try Grants.require(db, principal, .deploy, project: "*", environment: "*") }
        for target in targets {
            try Grants.require(db, principal, .deploy, project: target.project, environment: target.environment)
        }
    }
}
