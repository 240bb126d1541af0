package import DravenCore

/// `GET /ui/runs/{id}`: one plan run (`RunView`): its status, progress, current steps and
/// estimated completion; the step graph drawn from the plan's dependencies (an SVG, columns by
/// depth, each step's status in words as well as colour); each step with its attempts, times,
/// why it was skipped or failed, and its job linked; and the actions the viewer may take, each a
/// form posting here through the code of the API's twin (`PlanRunRoutes.cast`, `PlanEngine.retry`,
/// `.cancel`; `detail.via = "console"` in every record), or why not. Polls like the job page.
enum RunPage {
    static func page(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = try params.id("id")
        context.subject = "plan_run/\(id)"
        return try Console.polled(
            request, context, path: "/ui/runs/\(id)", version: { try RunView.version($0, run: id) },
            render: { session, etag in
                try render(session, context, run: id, notice: Console.notice(request), etag: etag)
            })
    }

    // MARK: - actions

    /// `POST /ui/runs/{id}/steps/{step}/vote` `decision`, `comment`.
    static func vote(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try onRunPage(request, params, context) { run, session, form in
            let step = params["step"] ?? ""
            let body: JSON = ["decision": .string(form["decision"] ?? ""), "comment": .string(form["comment"] ?? "")]
            let cast = try PlanRunRoutes.cast(body, run: run, step: step, by: session.principal, context)
            return "/ui/runs/\(run)?done=step-\(cast.decision == "approve" ? "approved" : "rejected")&step=\(step)"
        }
    }

    /// `POST /ui/runs/{id}/steps/{step}/retry`.
    static func retry(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try onRunPage(request, params, context) { run, session, _ in
            let step = params["step"] ?? ""
            try context.db().immediate { tx in
                try PlanEngine.retry(tx, run: run, step: step, by: session.principal, now: context.now)
            }
            return "/ui/runs/\(run)?done=step-retried&step=\(step)"
        }
    }

    /// `POST /ui/runs/{id}/cancel` `reason`.
    static func cancel(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try onRunPage(request, params, context) { run, session, form in
            let reason = try ConsoleActions.text(form, "reason") ?? ""
            try context.db().immediate { tx in
                try PlanEngine.cancel(tx, run: run, by: session.principal, reason: reason, now: context.now)
            }
            return "/ui/runs/\(run)?done=run-cancelled"
        }
    }

    /// A form of run `{id}`'s page: the run must be one the viewer may read (else 404, as the
    /// API), then `act(id, session, form)` as `ConsoleActions.attempt` runs it, a refusal shown on
    /// the run's page.
    static func onRunPage(
        _ request: Request, _ params: [String: String], _ context: Context,
        _ act: (Int64, Sessions.Live, [String: String]) throws -> String
    ) throws -> Response {
        let id = try params.id("id")
        context.subject = "plan_run/\(id)"
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        return try ConsoleActions.attempt(context) {
            guard let run = try PlanRuns.find(try context.db(), id: id),
                try run.plan.readable(try context.db(), by: session.principal)
            else { throw DravenError.notFound(what: "no plan run \(id)") }
            return try act(id, session, form)
        } refused: { notice in
            try render(session, context, run: id, notice: notice)
        }
    }

    // MARK: - the page

    static func render(
        _ session: Sessions.Live, _ context: Context, run id: Int64, notice: Console.Notice?, etag: String? = nil
    ) throws -> Response {
        let db = try context.db()
        let now = context.now
        let view = try RunView.load(db, run: id, viewer: session.principal, now: now)
        let run = view.run
        let path = "/ui/runs/\(run.id)"
        let plan = run.plan
        let columns = (view.steps.map(\.depth).max() ?? 0) + 1
        let byColumn = (0..<columns).map { d -> HTML in
            let cards = view.steps.filter { $0.depth == d }.map { card($0, run: run, session: session, now: now) }
            return "<div class=\"column\" role=\"listitem\"><ol>\(cards)</ol></div>"
        }
        let cancel = JobPage.form(
            "cancel", "Cancel run", view.cancel, action: "\(path)/cancel", session: session,
            field: ("reason", "Why cancel (optional)"))
        let main: HTML = """
            <p class="why"><a href="/ui/plans">Plans</a> › <a href="/ui/plans/\(plan.id)">\(plan.id)</a> › \
            run \(run.id) · As of \(Pages.time(now, now)) · <a href="\(path)">Refresh</a></p>
            <h2>Run \(run.id) · plan \(plan.id) version \(plan.version)</h2>
            \(notice.map(\.html) ?? .empty)
            \(summary(view, now: now))
            <section aria-labelledby="graph"><h3 id="graph">Steps</h3>\(graph(view))
            <div class="columns" role="list" aria-label="Steps by depth">\(byColumn)</div></section>
            <section aria-labelledby="actions" class="actions"><h3 id="actions">Actions</h3>\
            <div class="grid"><div>\(cancel)</div></div></section>
            """
        return Pages.layout(
            title: "Run \(run.id)", session: session, main: main,
            poll: (path, try etag ?? Console.etag(db, session, page: path + "#" + RunView.version(db, run: id))))
    }

    static func summary(_ view: RunView, now: Int64) -> HTML {
        let run = view.run
        let ended = run.steps.filter(\.status.isEnded).count
        let percent = run.steps.isEmpty ? 100 : ended * 100 / run.steps.count
        let current = run.steps.filter { $0.status == .running || $0.status == .retrying }.map {
            "<a href=\"#step-\($0.id)\"><code>\($0.id)</code></a>" as HTML
        }
        var rows: [HTML] = [
            "<dt>Status</dt><dd id=\"run-status\">\(PlanPages.status(run.status.rawValue))</dd>",
            """
            <dt>Progress</dt><dd id="run-progress">\(ended) of \(run.steps.count) steps ended (\(percent) %)\
            <progress max="100" value="\(percent)">\(percent) %</progress></dd>
            """,
            "<dt>Current</dt><dd id=\"run-current\">\(current.isEmpty ? "none" : HTML.join(current, ", "))</dd>",
            "<dt>Started</dt><dd>by \(run.startedByHandle), \(Pages.time(run.startedAt, now))</dd>",
        ]
        if !run.reason.isEmpty { rows.append("<dt>Reason</dt><dd><q>\(run.reason)</q></dd>") }
        if !run.inputs.entries.isEmpty {
            let inputs = run.inputs.entries.map {
                "<code>\($0.key)=\($0.value.stringValue ?? $0.value.serialized())</code>" as HTML
            }
            rows.append("<dt>Inputs</dt><dd>\(HTML.join(inputs, " "))</dd>")
        }
        if let endedAt = run.endedAt {
            rows.append("<dt>Ended</dt><dd>\(Pages.time(endedAt, now))</dd>")
        } else if let estimate = view.estimate {
            rows.append("<dt>Estimated end</dt><dd id=\"run-estimate\">\(Pages.time(estimate, now))</dd>")
        } else if run.status == .paused {
            rows.append(
                """
                <dt>Estimated end</dt><dd id="run-estimate">none while paused: retry the failed step or cancel \
                the run</dd>
                """)
        }
        if let failed = run.detail["failed_step"]?.stringValue {
            rows.append("<dt>Failed step</dt><dd><a href=\"#step-\(failed)\"><code>\(failed)</code></a></dd>")
        }
        return "<dl class=\"summary\">\(rows)</dl>"
    }

    /// One step's card: its status in colour and words, attempts, times, why it was skipped or
    /// failed, its job, compensation, votes, and its actions.
    static func card(_ s: RunView.StepView, run: PlanRuns.Run, session: Sessions.Live, now: Int64) -> HTML {
        let row = s.row
        var rows: [HTML] = []
        if !s.step.dependsOn.isEmpty {
            let after = s.step.dependsOn.map { "<a href=\"#step-\($0)\"><code>\($0)</code></a>" as HTML }
            rows.append("<dt>After</dt><dd>\(HTML.join(after, ", "))</dd>")
        }
        if let condition = s.step.condition { rows.append("<dt>If</dt><dd><code>\(condition.source)</code></dd>") }
        rows.append("<dt>Attempts</dt><dd>\(row.attempts)</dd>")
        if let at = row.startedAt { rows.append("<dt>Started</dt><dd>\(Pages.time(at, now))</dd>") }
        if let at = row.completedAt { rows.append("<dt>Ended</dt><dd>\(Pages.time(at, now))</dd>") }
        if let at = row.dueAt, !row.status.isEnded {
            rows.append("<dt>\(row.status == .retrying ? "Retry" : "Next")</dt><dd>\(Pages.time(at, now))</dd>")
        }
        if let at = row.deadlineAt, !row.status.isEnded {
            rows.append("<dt>Deadline</dt><dd>\(Pages.time(at, now))</dd>")
        }
        if !row.reason.isEmpty || row.cause != nil {
            let cause: HTML = row.cause.map { "<code>\($0)</code>: " } ?? .empty
            rows.append("<dt>Why</dt><dd class=\"why\" id=\"why-step-\(row.id)\">\(cause)\(row.reason)</dd>")
        }
        if let job = row.jobID { rows.append("<dt>Job</dt><dd>\(Pages.jobLink(job))</dd>") }
        if let compensation = row.compensation {
            let job: HTML = row.compensationJob.map { " · \(Pages.jobLink($0))" } ?? .empty
            rows.append("<dt>Undo</dt><dd>\(compensation.rawValue)\(job)</dd>")
        }
        if case .approval(let required, _) = s.step.action {
            let approvals = s.votes.filter { $0.decision == "approve" }.map(\.person)
            let said = approvals.isEmpty ? "none yet" : approvals.joined(separator: ", ")
            let rejected = s.votes.filter { $0.decision == "reject" }.map(\.person)
            let no: HTML = rejected.isEmpty ? .empty : "; rejected by \(rejected.joined(separator: ", "))"
            rows.append("<dt>Votes</dt><dd>\(approvals.count) of \(required) approvals: \(said)\(no)</dd>")
        }
        var actions: [HTML] = []
        if let vote = s.vote {
            actions.append(
                JobPage.voteForm(
                    action: "/ui/runs/\(run.id)/steps/\(row.id)/vote", key: "\(run.id)-\(row.id)", approve: vote,
                    reject: vote, session: session, back: nil, oneCheck: true))
        }
        if let retry = s.retry {
            actions.append(
                JobPage.form(
                    "retry-\(row.id)", "Retry", retry, action: "/ui/runs/\(run.id)/steps/\(row.id)/retry",
                    session: session, field: nil))
        }
        return """
            <li><article class="step" id="step-\(row.id)" data-step="\(row.id)" data-status="\(row.status.rawValue)">\
            <h4><code>\(row.id)</code> · \(s.step.action.type) — \(PlanPages.status(row.status.rawValue))</h4>\
            <dl>\(rows)</dl>\(HTML.join(actions))</article></li>
            """
    }

    // MARK: - the graph

    static let nodeWidth = 150
    static let nodeHeight = 44
    static let columnGap = 36
    static let rowGap = 12

    /// The steps as boxes in columns by depth, an arrow from each dependency to its step; each box
    /// links to the step's card and says its status in words (and in colour: `g-STATUS`).
    static func graph(_ view: RunView) -> HTML {
        var rowInColumn: [Int: Int] = [:]
        var at: [String: (x: Int, y: Int)] = [:]
        for s in view.steps {
            let row = rowInColumn[s.depth, default: 0]
            rowInColumn[s.depth] = row + 1
            at[s.row.id] = (4 + s.depth * (nodeWidth + columnGap), 4 + row * (nodeHeight + rowGap))
        }
        let columns = (rowInColumn.keys.max() ?? 0) + 1
        let rows = rowInColumn.values.max() ?? 1
        let width = 8 + columns * nodeWidth + (columns - 1) * columnGap
        let height = 8 + rows * nodeHeight + (rows - 1) * rowGap
        var edges: [HTML] = []
        var nodes: [HTML] = []
        for s in view.steps {
            guard let to = at[s.row.id] else { continue }
            for dep in s.step.dependsOn {
                guard let from = at[dep] else { continue }
                let (x1, y1) = (from.x + nodeWidth, from.y + nodeHeight / 2)
                let (x2, y2) = (to.x - 2, to.y + nodeHeight / 2)
                let mid = (x1 + x2) / 2
                edges.append(
                    """
                    <path class="edge" d="M\(x1) \(y1) C\(mid) \(y1) \(mid) \(y2) \(x2) \(y2)" \
                    marker-end="url(#arrow)"/>
                    """
                )
            }
            let name = s.row.id.count > 17 ? String(s.row.id.prefix(16)) + "…" : s.row.id
            let status = s.row.status.rawValue
            nodes.append(
                """
                <a href="#step-\(s.row.id)"><g class="node g-\(status)"><title>\(s.row.id): \(status)</title>\
                <rect x="\(to.x)" y="\(to.y)" width="\(nodeWidth)" height="\(nodeHeight)" rx="6"/>\
                <text x="\(to.x + 8)" y="\(to.y + 18)" class="n">\(name)</text>\
                <text x="\(to.x + 8)" y="\(to.y + 36)" class="t">\(status.replacing("_", " "))</text></g></a>
                """)
        }
        let label = view.steps.map { "\($0.row.id) \($0.row.status.rawValue)" }.joined(separator: ", ")
        return """
            <svg class="graph" role="img" aria-label="Step graph: \(label)" width="\(width)" height="\(height)" \
            viewBox="0 0 \(width) \(height)" xmlns="http://www.w3.org/2000/svg">\
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" \
            orient="auto"><path d="M0 0L10 5L0 10z"/></marker></defs>\(edges)\(nodes)</svg>
            """
    }
}
