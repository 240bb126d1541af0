package import DravenCore

/// The console's plans: `GET /ui/plans` lists each plan the viewer may read (its latest version,
/// description, steps and newest runs: `PlanListing.all`); `GET /ui/plans/{id}` shows one with its
/// run form, its recent runs and its canonical document, read-only; `POST /ui/plans/{id}/runs`
/// starts a run through `PlanRunRoutes.startRun`, the code of `POST /api/v1/plans/{id}/runs`
/// (grants, inputs, a per-form idempotency key so a form posted twice starts one run), and answers
/// 303 to the run's page (`RunPage`). A refusal shows the form again with the problem's detail next
/// to the input it is about, with the problem's status, recorded as every console refusal is.
enum PlanPages {
    /// How many runs each plan shows on the list, and on its own page.
    static let listedRuns = 5
    static let pageRuns = 10

    static func list(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try Console.polled(request, context, path: "/ui/plans") { session, etag in
            let now = context.now
            let plans = try PlanListing.all(try context.db(), viewer: session.principal, runs: listedRuns)
            let items = plans.map { listing -> HTML in
                let plan = listing.plan
                let runs: HTML =
                    listing.runs.isEmpty
                    ? "<p class=\"why\">No run yet.</p>"
                    : "<ul class=\"runs\">\(listing.runs.map { runItem($0, now) })</ul>"
                return """
                    <article data-plan="\(plan.id)" aria-labelledby="pl-\(plan.id)">\
                    <h3 id="pl-\(plan.id)"><a href="/ui/plans/\(plan.id)">\(plan.id)</a> \
                    <span class="tag">version \(listing.stored.version)</span></h3>
                    \(plan.description.isEmpty ? .empty : "<p>\(plan.description)</p>" as HTML)
                    <p class="why">\(steps(plan))</p>\(runs)</article>
                    """
            }
            let body: HTML =
                items.isEmpty
                ? """
                <p>You may read no plan: a plan shows here once you have a <code>read</code> grant on an \
                environment it deploys to.</p>
                """
                : "<div class=\"list\">\(items)</div>"
            return Pages.layout(
                title: "Plans", session: session,
                main: """
                    <p class="why">As of \(Pages.time(now, now)) · <a href="/ui/plans">Refresh</a></p>
                    <h2>Plans</h2>\(body)
                    """,
                poll: ("/ui/plans", etag))
        }
    }

    /// "4 steps: stage (deploy), soak (wait) …".
    static func steps(_ plan: Plan) -> HTML {
        let named = plan.steps.map { "<code>\($0.id)</code> (\($0.action.type))" as HTML }
        return "\(plan.steps.count) step\(plan.steps.count == 1 ? "" : "s"): \(HTML.join(named, ", "))"
    }

    /// One run in a list: its link, status (colour and text), who started it and when.
    static func runItem(_ run: PlanRuns.Run, _ now: Int64) -> HTML {
        let ended: HTML = run.endedAt.map { ", ended \(Pages.time($0, now))" } ?? .empty
        return """
            <li data-run="\(run.id)"><a href="/ui/runs/\(run.id)">run \(run.id)</a> \(status(run.status.rawValue)) \
            <span class="why">version \(run.plan.version), by \(run.startedByHandle) \
            \(Pages.time(run.startedAt, now))\(ended)</span></li>
            """
    }

    /// A run's or a step's status: its colour and its words.
    static func status(_ raw: String) -> HTML {
        "<span class=\"state s-\(raw)\">\(raw.replacing("_", " "))</span>"
    }

    // MARK: - one plan

    /// What the run form keeps between a refused post and the page showing it again.
    struct Values {
        var inputs: [String: String] = [:]
        var reason = ""
    }

    static func page(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = params["id"] ?? ""
        context.subject = "plan/\(id.capped(128).text)"
        return try Console.polled(request, context, path: "/ui/plans/\(id)") { session, etag in
            try render(session, context, id: id, values: Values(), error: nil, etag: etag)
        }
    }

    static func start(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = params["id"] ?? ""
        context.subject = "plan/\(id.capped(128).text)"
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        var values = Values(reason: form["reason"] ?? "")
        var inputs = JSONObject()
        for (name, value) in form where name.hasPrefix("input.") {
            let input = String(name.dropFirst(6))
            values.inputs[input] = value
            if !value.isEmpty { inputs[input] = .string(value) }  // empty: the input's default
        }
        do {
            let reason = try ConsoleActions.text(form, "reason") ?? ""
            let key = {
                try form["key"].flatMap { $0.isEmpty ? nil : $0 }.flatMap {
                    try Trigger.idempotencyKey(Request(method: "POST", path: "", headers: ["idempotency-key": $0]))
                }
            }
            let (run, _) = try PlanRunRoutes.start(
                id, inputs: inputs, reason: reason, by: session.principal, idempotencyKey: key, context)
            return Response(status: 303, headers: [("Location", "/ui/runs/\(run)?done=started")])
        } catch let error as DravenError {
            let problem = Problem(error)
            context.auditRefusal(problem)
            var field = ""
            if case .invalidField(let pointer, _) = error { field = pointer }
            var response: Response
            do {
                response = try render(session, context, id: id, values: values, error: (field, problem.detail))
            } catch {  // no such plan for the viewer: the problem alone
                response = Pages.problem(problem, signedIn: context.principal)
            }
            response.status = problem.status
            return response
        }
    }

    /// The plan's page; `error`: a refused start's pointer (`/inputs/NAME`, `reason`) and detail.
    static func render(
        _ session: Sessions.Live, _ context: Context, id: String, values: Values,
        error: (pointer: String, detail: String)?, etag: String? = nil
    ) throws -> Response {
        let db = try context.db()
        let now = context.now
        let listing = try PlanListing.one(db, id: id, viewer: session.principal, runs: pageRuns)
        let plan = listing.plan
        let path = "/ui/plans/\(plan.id)"
        let startable = try Permission.deciding {
            try PlanEngine.requireGrants(db, plan, session.principal)
            return nil
        }
        let runs: HTML =
            listing.runs.isEmpty
            ? "<p class=\"why\">No run yet.</p>" : "<ul class=\"runs\">\(listing.runs.map { runItem($0, now) })</ul>"
        let stored = listing.stored
        let main: HTML = """
            <p class="why"><a href="/ui/plans">Plans</a> › plan \(plan.id) · As of \(Pages.time(now, now)) · \
            <a href="\(path)">Refresh</a></p>
            <h2>Plan \(plan.id) · version \(stored.version)</h2>
            \(plan.description.isEmpty ? .empty : "<p>\(plan.description)</p>" as HTML)
            <dl class="summary"><dt>Applied</dt><dd>by \(stored.appliedBy), \(Pages.time(stored.appliedAt, now))</dd>\
            <dt>Steps</dt><dd>\(steps(plan))</dd><dt>On failure</dt><dd>\(plan.onFailure.rawValue)</dd></dl>
            <section aria-labelledby="start"><h3 id="start">Start a run</h3>\
            \(form(plan, session: session, permission: startable, values: values, error: error))</section>
            <section aria-labelledby="recent"><h3 id="recent">Recent runs</h3>\(runs)</section>
            <section aria-labelledby="document"><h3 id="document">Document</h3>
            <p class="why">The canonical document of version \(stored.version) (digest \
            <code>\(String(stored.digest.prefix(12)))</code>), read-only: change it with <code>draven apply</code>.</p>
            <pre class="log" id="plan-document" tabindex="0">\(pretty(try JSON.parse(stored.document)))</pre></section>
            """
        return Pages.layout(
            title: "Plan \(plan.id)", session: session, main: main,
            poll: (path, try etag ?? Console.etag(db, session, page: path)))
    }

    /// The run form: one field per input (its type, pattern and default said under it), a
    /// reason, Start; or why the viewer may not start the plan.
    static func form(
        _ plan: Plan, session: Sessions.Live, permission: Permission, values: Values,
        error: (pointer: String, detail: String)?
    ) -> HTML {
        guard permission.allowed else {
            return "<p class=\"why\" id=\"why-start\">You may not start this plan: \(permission.reason ?? "")</p>"
        }
        var claimed = false
        func note(_ pointer: String, _ id: String) -> (HTML, HTML) {
            guard let error, error.pointer == pointer else { return (.empty, .empty) }
            claimed = true
            return (
                " aria-invalid=\"true\" aria-describedby=\"\(id)-error\"",
                "<p class=\"error\" id=\"\(id)-error\" role=\"alert\">\(error.detail)</p>"
            )
        }
        var fields: [HTML] = []
        for input in plan.inputs {
            let id = "input-\(input.name)"
            let (attr, error) = note("/inputs/\(input.name)", id)
            var said: [String] = [input.type == .string ? "text" : "a \(input.type.rawValue) name"]
            if let pattern = input.pattern { said.append("matching \(pattern)") }
            let required: HTML
            if let value = input.defaultValue {
                said.append("empty for the default \(value)")
                required = " placeholder=\"\(value)\""
            } else {
                said.append("required")
                required = " required"
            }
            fields.append(
                """
                <label for="\(id)">\(input.name)</label>
                <input id="\(id)" name="input.\(input.name)" type="text" maxlength="255" \
                value="\(values.inputs[input.name] ?? "")"\(required)\(attr)>\
                <p class="why" id="\(id)-help">\(said.joined(separator: ", "))</p>\(error)
                """)
        }
        let (reasonAttr, reasonError) = note("reason", "reason")
        let general: HTML =
            error != nil && !claimed
            ? "<p class=\"alert bad\" role=\"alert\" id=\"notice\">\(error?.detail ?? "")</p>" : .empty
        return """
            \(general)<form class="stack" method="post" action="/ui/plans/\(plan.id)/runs">
            <input type="hidden" name="csrf" value="\(session.csrf)">
            <input type="hidden" name="key" value="\(Hex.encode(Sodium.randomBytes(16)))">
            \(fields)<label for="reason">Reason</label>
            <input id="reason" name="reason" type="text" maxlength="1000" value="\(values.reason)"\(reasonAttr)>\
            \(reasonError)<div class="buttons"><button type="submit">Start</button></div></form>
            """
    }

    /// `value` as indented JSON (members in stored order, two spaces a level), for reading.
    static func pretty(_ value: JSON, depth: Int = 0) -> String {
        let pad = String(repeating: "  ", count: depth + 1)
        let end = String(repeating: "  ", count: depth)
        switch value {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { pad + pretty($0, depth: depth + 1) }.joined(separator: ",\n") + "\n" + end + "]"
        case .object(let object) where !object.entries.isEmpty:
            let members = object.entries.map {
                pad + JSON.string($0.key).serialized() + ": " + pretty($0.value, depth: depth + 1)
            }
            return "{\n" + members.joined(separator: ",\n") + "\n" + end + "}"
        default:
            return value.serialized()
        }
    }
}
