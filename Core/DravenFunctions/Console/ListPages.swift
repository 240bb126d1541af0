package import DravenCore

/// The approvals inbox (`GET /ui/approvals`), an environment's page (`GET
/// /ui/environments/{project}/{environment}`) and the audit trail (`GET /ui/audit`), each from its
/// read model (`ApprovalsInbox`, `EnvironmentView`, `AuditPage`), which filters by read grant.
enum ListPages {
    // MARK: - approvals inbox

    static func inbox(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try Console.polled(request, context, path: "/ui/approvals") { session, etag in
            try renderInbox(session, context, notice: Console.notice(request), etag: etag)
        }
    }

    static func renderInbox(
        _ session: Sessions.Live, _ context: Context, notice: Console.Notice?, etag: String? = nil
    ) throws -> Response {
        let db = try context.db()
        let now = context.now
        let model = try ApprovalsInbox.load(db, viewer: session.principal, now: now)
        let back = "approvals"
        let items = model.items.map { item -> HTML in
            let job = item.job
            let votes: HTML =
                item.approvedBy.isEmpty
                ? "no approvals yet" : "approved by \(item.approvedBy.joined(separator: ", "))"
            return """
                <article data-job="\(job.id)" aria-labelledby="a-\(job.id)">\
                <h3 id="a-\(job.id)">\(Pages.jobLink(job.id)) · \(job.kind.rawValue) <code>\(Pages.shortRef(job.ref))\
                </code>\(Pages.sha(job.sha)) to \(job.project)/\(job.environment)</h3>
                <p>Requested by \(job.requestedBy) \(Pages.time(job.createdAt, now))\(Pages.reason(job))</p>
                <p>\(item.approvedBy.count) of \(item.required) approvals: \(votes); expires \
                \(Pages.time(item.expiresAt, now))</p>
                \(JobPage.voteForm(job, approve: item.approve, reject: item.reject, session: session, back: back))
                </article>
                """
        }
        let body: HTML =
            items.isEmpty
            ? "<p>Nothing waits for your approval.</p>" : "<div class=\"list\">\(items)</div>"
        return Pages.layout(
            title: "Approvals", session: session,
            main: """
                <p class="why">As of \(Pages.time(now, now)) · <a href="/ui/approvals">Refresh</a></p>
                <h2>Waiting for your approval</h2>\(notice.map(\.html) ?? .empty)
                \(body)
                """,
            poll: ("/ui/approvals", try etag ?? Console.etag(db, session, page: "/ui/approvals")))
    }

    // MARK: - environment

    static func environment(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let project = params["project"] ?? ""
        let environment = params["environment"] ?? ""
        context.subject = "\(project)/\(environment)"
        return try Console.polled(request, context, path: Pages.environmentPath(project, environment)) {
            session, etag in
            try renderEnvironment(
                session, context, project: project, environment: environment, notice: Console.notice(request),
                etag: etag)
        }
    }

    static func renderEnvironment(
        _ session: Sessions.Live, _ context: Context, project: String, environment: String, notice: Console.Notice?,
        etag: String? = nil
    ) throws -> Response {
        let db = try context.db()
        let now = context.now
        let view = try EnvironmentView.load(db, project: project, environment: environment, viewer: session.principal)
        let path = Pages.environmentPath(project, environment)
        let policy = view.policy
        let refs = policy.refs.map { "\($0.kind.rawValue) \($0.pattern)" }.joined(separator: ", ")
        var facts: [HTML] = [
            "<dt>Accepts</dt><dd>\(refs.isEmpty ? "nothing" : refs)</dd>",
            "<dt>Approvals</dt><dd>\(policy.approvalsRequired)</dd>",
            "<dt>When locked</dt><dd>\(policy.lockMode.rawValue)</dd>",
        ]
        if let holder = view.holder, let lock = view.lock {
            var held: HTML =
                """
                held by \(Pages.jobLink(holder.id)) (\(holder.kind.rawValue) \
                <code>\(Pages.shortRef(holder.ref))</code> \
                by \(holder.requestedBy), \(Pages.state(holder.state))) with fencing token \(lock.fencingToken)
                """
            if let until = lock.leaseUntil { held = "\(held); lease ends \(Pages.time(until, now))" }
            facts.append("<dt>Lock</dt><dd>\(held)</dd>")
        } else {
            let last: HTML = view.lock.map { " (last fencing token \($0.fencingToken))" } ?? .empty
            facts.append("<dt>Lock</dt><dd>free\(last)</dd>")
        }
        let queue: HTML
        if view.queue.isEmpty {
            queue = "<p>Nothing is queued.</p>"
        } else {
            let items = view.queue.map { q -> HTML in
                """
                <li>\(Pages.jobLink(q.job.id)) \(q.job.kind.rawValue) <code>\(Pages.shortRef(q.job.ref))</code> by \
                \(q.job.requestedBy), queued \(Pages.time(q.job.updatedAt, now))\
                \(q.position == 1 ? " — starts next" : "")\
                </li>
                """
            }
            queue = "<ol>\(items)</ol>"
        }
        let rows = view.releases.map { r -> HTML in
            let release = r.release
            let who: HTML = r.job.map { " by \($0.requestedBy)\(Pages.reason($0))" } ?? .empty
            let live: HTML =
                r.live
                ? "<strong>live</strong> since \(Pages.time(release.liveFrom, now))"
                : "live \(Pages.time(release.liveFrom, now)) until \(Pages.time(release.liveUntil ?? 0, now))"
            let action =
                r.rollBack.allowed
                ? JobPage.form(
                    "rollback-\(release.id)", "Roll back to this", r.rollBack, action: path + "/rollback",
                    session: session, field: ("reason", "Why (optional)"), hidden: [("to_release", "\(release.id)")])
                : "<p class=\"why\">\(r.rollBack.reason ?? "")</p>"
            return """
                <li data-release="\(release.id)"><code>\(Pages.shortRef(release.ref))</code>\(Pages.sha(release.sha)) \
                (release \(release.id), \(release.kind)) — \(live), \
                \(Pages.jobLink(release.jobID))\(who)\(action)</li>
                """
        }
        let history: HTML =
            rows.isEmpty ? "<p>Nothing was deployed here yet.</p>" : "<ol class=\"releases\">\(rows)</ol>"
        return Pages.layout(
            title: "\(project)/\(environment)", session: session,
            main: """
                <p class="why"><a href="/ui/">Overview</a> › \(project)/\(environment) · \
                As of \(Pages.time(now, now)) \
                · <a href="\(path)">Refresh</a></p>
                <h2>\(project)/\(environment)</h2>\(notice.map(\.html) ?? .empty)
                <dl class="summary">\(facts)</dl>
                <section aria-labelledby="queue"><h3 id="queue">Queue</h3>\(queue)</section>
                <section aria-labelledby="releases"><h3 id="releases">Releases</h3>\(history)</section>
                """,
            poll: (path, try etag ?? Console.etag(db, session, page: path)))
    }

    // MARK: - audit

    static func audit(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        guard let session = try SessionCookie.session(request, context) else { return Console.toSignIn }
        let db = try context.db()
        try Sessions.touch(db, session, now: context.now)
        let q = request.queryItems
        func value(_ name: String) -> String? { q[name].flatMap { $0.isEmpty ? nil : String($0.prefix(255)) } }
        let before = value("before").flatMap { Int64($0) }
        let filter = AuditPage.Filter(
            person: value("person"), project: value("project"), action: value("action"), before: before)
        let page = try AuditPage.load(
            db, viewer: session.principal, filter: filter, checkpoints: CheckpointPaths(context.paths))
        let now = context.now
        let rows = page.records.map { r -> HTML in
            let detail = (try? JSON.parse(r.detail))?.objectValue ?? [:]
            let via: HTML = detail["via"]?.stringValue.map { " <span class=\"tag\">via \($0)</span>" } ?? .empty
            let subject: HTML
            if r.subject.hasPrefix("job/"), let id = Int64(r.subject.dropFirst(4)) {
                subject = Pages.jobLink(id)
            } else {
                subject = "\(r.subject)"
            }
            let said = detail["detail"]?.stringValue ?? detail["reason"]?.stringValue ?? detail["comment"]?.stringValue
            let line: HTML = said.flatMap { $0.isEmpty ? nil : " <span class=\"why\">\($0)</span>" } ?? .empty
            return """
                <tr data-audit="\(r.id)"><td>\(r.id)</td><td>\(Pages.time(r.at, now))</td><td>\(r.actor)</td>\
                <td><code>\(r.action)</code>\(via)</td><td>\(subject)</td>\
                <td class="o-\(r.outcome)">\(r.outcome)\(line)</td></tr>
                """
        }
        var next: HTML = .empty
        if let older = page.next {
            var items = ["before=\(older)"]
            for (key, v) in [("person", filter.person), ("project", filter.project), ("action", filter.action)] {
                if let v { items.append("\(key)=\(Pages.formEncode(v))") }
            }
            next = "<p><a href=\"/ui/audit?\(items.joined(separator: "&"))\" rel=\"next\">Older records</a></p>"
        }
        let table: HTML =
            rows.isEmpty
            ? "<p>No record you may read matches.</p>"
            : """
            <div class="scroll"><table><thead><tr><th>#</th><th>When</th><th>Who</th><th>Action</th><th>About</th>\
            <th>Outcome</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
        func input(_ name: String, _ label: String, _ value: String?, _ hint: String) -> HTML {
            """
            <label for="f-\(name)">\(label)</label><input id="f-\(name)" name="\(name)" type="text" \
            value="\(value ?? "")" placeholder="\(hint)">
            """
        }
        return Pages.layout(
            title: "Audit", session: session,
            main: """
                <h2>Audit trail</h2>
                \(verification(page.verification, now: now))
                <form class="filters" method="get" action="/ui/audit">
                \(input("person", "Person", filter.person, "anyone"))\
                \(input("project", "Project", filter.project, "any"))\
                \(input("action", "Action", filter.action, "approval.approve, or job. for a family"))
                <button type="submit">Filter</button></form>
                \(table)\(next)
                """)
    }

    static func verification(_ v: AuditPage.Verification?, now: Int64) -> HTML {
        guard let v else { return .empty }
        guard v.intact else {
            let findings = v.findings.map { "<li>\($0.description)</li>" as HTML }
            return """
                <div class="alert bad" role="alert" id="verification"><strong>The audit chain does not verify.</strong>\
                <ul>\(findings)</ul>Run <code>draven audit verify</code> on the server.</div>
                """
        }
        let scope: HTML
        if let checkpoint = v.checkpoint {
            scope = """
                the \(checkpoint.count) records up to #\(checkpoint.headID) are covered by the checkpoint signed \
                \(Pages.time(checkpoint.at, now)); the \(v.uncovered) after it were checked against their hashes
                """
        } else {
            scope = "no signed checkpoint yet: every record was checked against its hash"
        }
        return """
            <p class="alert ok" id="verification"><strong>Chain verified</strong>: \(v.records) records; \(scope).</p>
            """
    }
}
