package import DravenCore

/// The console's pages, rendered from the domain's read models with `HTML` (every value escaped).
enum Pages {
    /// The document around a page's `<main>`: the stylesheet and script at their hashed paths, the
    /// header with the viewer and a sign-out form (with the session's CSRF token) when signed in.
    /// `poll`: the page's own path and ETag, which the script polls with (`Console.polled`).
    static func layout(
        title: String, session: Sessions.Live?, main: HTML, poll: (path: String, etag: String)? = nil,
        status: Int = 200
    ) -> Response {
        let mainAttributes: HTML = poll.map { " data-poll=\"\($0.path)\" data-etag=\"\($0.etag)\"" } ?? .empty
        let nav: HTML
        if let session {
            nav = """
                <nav aria-label="Account"><a href="/ui/">Overview</a><a href="/ui/approvals">Approvals</a>\
                <a href="/ui/deploy">Deploy</a><a href="/ui/plans">Plans</a><a href="/ui/audit">Audit</a>\
                <span>Signed in as <strong>\(session.principal.handle)</strong></span>\
                <form method="post" action="/ui/sign-out"><input type="hidden" name="csrf" value="\(session.csrf)">\
                <button type="submit" class="link">Sign out</button></form></nav>
                """
        } else {
            nav = .empty
        }
        let page: HTML = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer">
            <title>\(title) · draven</title>
            <link rel="stylesheet" href="\(Assets.stylePath)">
            <script src="\(Assets.scriptPath)" defer></script>
            </head><body>
            <header><h1>draven</h1>\(nav)</header>
            <main\(mainAttributes)>\(main)</main>
            </body></html>

            """
        return Response(
            status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(page.text.utf8))
    }

    static func signIn(error: String?) -> Response {
        var message = HTML.empty
        if let error { message = "<p class=\"error\" id=\"token-error\" role=\"alert\">\(error)</p>" }
        let described: HTML = error == nil ? .empty : " aria-describedby=\"token-error\""
        return layout(
            title: "Sign in", session: nil,
            main: """
                <h2>Sign in</h2>
                <form class="stack" method="post" action="/ui/sign-in">
                <label for="token">API token</label>
                <input id="token" name="token" type="password" autocomplete="off" required\(described)>
                \(message)<button type="submit">Sign in</button>
                </form>
                <p class="why">Or ask an operator for a one-time link: \
                <code>draven console link --person NAME</code>.</p>
                """)
    }

    static func link(token: String, handle: String, expiresAt: Int64, now: Int64) -> Response {
        layout(
            title: "Sign in as \(handle)", session: nil,
            main: """
                <h2>Sign in as \(handle)</h2>
                <form class="stack" method="post" action="/ui/link/\(token)">
                <p>This one-time link expires \(time(expiresAt, now)). Using it signs this browser in as \
                <strong>\(handle)</strong>.</p>
                <button type="submit">Sign in as \(handle)</button>
                </form>
                """)
    }

    static func problem(_ problem: Problem, signedIn principal: Principal?) -> Response {
        let next: HTML =
            problem.status == 401 || problem.status == 404 && principal == nil
            ? "<p><a href=\"/ui/sign-in\">Sign in</a></p>" : "<p><a href=\"/ui/\">Back to the overview</a></p>"
        return layout(
            title: problem.title, session: nil,
            main: """
                <h2>\(problem.title)</h2>
                <p class="error" role="alert">\(problem.detail)</p>
                \(next)
                """, status: problem.status)
    }

    // MARK: - overview

    static func overview(
        _ model: Overview, session: Sessions.Live, poll: (path: String, etag: String), filter: Overview.Filter,
        notice: Console.Notice?, now: Int64
    ) -> Response {
        var sections: [HTML] = []
        for project in model.projects {
            let cells = project.cells.map { cell($0, now: now) }
            sections.append(
                """
                <section aria-labelledby="p-\(project.name)"><h2 id="p-\(project.name)">\(project.name)</h2>
                <div class="grid">\(cells)</div></section>
                """)
        }
        let body: HTML
        if !sections.isEmpty {
            body = HTML.join(sections)
        } else if filter.project != nil {
            body = "<p>No environment you may read is in a project matching that name.</p>"
        } else {
            body = "<p>You may read no environment yet: ask an operator for a <code>read</code> grant.</p>"
        }
        return layout(
            title: "Overview", session: session,
            main: """
                <p class="why">As of \(time(now, now)) · <a href="\(poll.path)">Refresh</a></p>
                \(notice.map(\.html) ?? .empty)\(pager(model, filter))\(body)\
                \(model.pages > 1 ? pager(model, filter) : .empty)
                """,
            poll: poll)
    }

    /// The project filter and, when the environments take more than one page, where this page is
    /// and links to the others.
    static func pager(_ model: Overview, _ filter: Overview.Filter) -> HTML {
        let project = filter.project ?? ""
        let base = project.isEmpty ? "/ui/?" : "/ui/?project=\(formEncode(project))&"
        var links: [HTML] = []
        if model.page > 1 { links.append("<a href=\"\(base)page=\(model.page - 1)\" rel=\"prev\">Previous</a>") }
        if model.page < model.pages { links.append("<a href=\"\(base)page=\(model.page + 1)\" rel=\"next\">Next</a>") }
        let first = (model.page - 1) * Overview.pageSize + 1
        let last = min(model.page * Overview.pageSize, model.total)
        let place: HTML =
            model.pages > 1
            ? """
            Environments \(first)–\(last) of \(model.total) · page \(model.page) of \(model.pages) · \
            \(HTML.join(links, " · "))
            """
            : .empty
        return """
            <form class="pager" method="get" action="/ui/"><label for="project-filter">Project</label>\
            <input id="project-filter" name="project" type="text" value="\(project)" placeholder="name, or prefix*">\
            <button type="submit">Show</button> <span class="why">\(place)</span></form>
            """
    }

    static func cell(_ cell: Overview.Cell, now: Int64) -> HTML {
        var rows: [HTML] = []
        if let live = cell.live {
            let (release, by) = live
            rows.append(
                """
                <dt>Live</dt><dd><code>\(shortRef(release.ref))</code>\(sha(release.sha)) since \
                \(time(release.liveFrom, now)) by \(by) (\(jobLink(release.jobID)))</dd>
                """)
        } else {
            rows.append("<dt>Live</dt><dd>nothing yet</dd>")
        }
        if let running = cell.running {
            let (job, lock) = running
            var what: HTML =
                "\(state(job.state)) \(jobLink(job.id)) <code>\(shortRef(job.ref))</code> by \(job.requestedBy)"
            if let progress = Progress(job) {
                if let step = progress.step { what = "\(what) · step \(step)" }
                if let percent = progress.percent {
                    what =
                        """
                        \(what) · \(percent) %<progress max="100" value="\(min(max(percent, 0), 100))">\
                        \(percent) %</progress>
                        """
                }
                if let message = progress.message { what = "\(what) <span class=\"why\">\(message)</span>" }
            }
            if let lock {
                what = "\(what)<br><span class=\"why\">fencing token \(lock.fencingToken)"
                if let until = lock.leaseUntil { what = "\(what) · lease ends \(time(until, now))" }
                what = "\(what)</span>"
            }
            rows.append("<dt>Running</dt><dd>\(what)\(reason(job))</dd>")
        }
        if !cell.queued.isEmpty {
            var holder: HTML = "no one"
            if let running = cell.running { holder = "\(jobLink(running.job.id)) (\(running.job.requestedBy))" }
            let items = cell.queued.enumerated().map { k, job -> HTML in
                """
                <li>\(jobLink(job.id)) <code>\(shortRef(job.ref))</code> by \(job.requestedBy) — \
                <span class="why">waiting for the lock held by \(holder); position \(k + 1) of \(cell.queued.count)\
                </span></li>
                """
            }
            rows.append("<dt>Queue</dt><dd>\(cell.queued.count) waiting<ol>\(items)</ol></dd>")
        } else {
            rows.append("<dt>Queue</dt><dd>0 waiting</dd>")
        }
        for (job, standing) in cell.awaiting {
            let who: HTML =
                standing.mayApprove.isEmpty
                ? "no one else may approve" : "may approve: \(standing.mayApprove.joined(separator: ", "))"
            rows.append(
                """
                <dt>Approvals</dt><dd>\(jobLink(job.id)) <code>\(shortRef(job.ref))</code> by \(job.requestedBy): \
                \(standing.approvedBy.count) of \(standing.required) approvals — <span class="why">\(who)</span>\
                \(reason(job))</dd>
                """)
        }
        for job in cell.pending {
            rows.append(
                "<dt>Pending</dt><dd>\(jobLink(job.id)) <code>\(shortRef(job.ref))</code> by \(job.requestedBy)</dd>")
        }
        if let last = cell.last {
            rows.append(
                """
                <dt>Last</dt><dd>\(state(last.state)) \(jobLink(last.id)) <code>\(shortRef(last.ref))</code> by \
                \(last.requestedBy), \(time(last.updatedAt, now))\(reason(last))</dd>
                """)
        }
        if let refused = cell.refused {
            let detail = (try? JSON.parse(refused.detail))?["detail"]?.stringValue ?? "refused"
            rows.append(
                """
                <dt>Refused</dt><dd class="why">\(refused.actor)'s request, \(time(refused.at, now)): \
                <span class="error">\(detail)</span></dd>
                """)
        }
        let id = "e-\(cell.project)-\(cell.environment)"
        return """
            <article aria-labelledby="\(id)" data-environment="\(cell.project)/\(cell.environment)">\
            <h3 id="\(id)"><a href="\(environmentPath(cell.project, cell.environment))">\(cell.environment)</a></h3>\
            <dl>\(rows)</dl></article>
            """
    }

    /// `job N` linking to its page.
    static func jobLink(_ id: Int64) -> HTML { "<a href=\"/ui/jobs/\(id)\">job \(id)</a>" }

    static func environmentPath(_ project: String, _ environment: String) -> String {
        "/ui/environments/\(project)/\(environment)"
    }

    /// Whether `url` may be a link's target: http(s) only (never `javascript:` or `data:`).
    static func isWebURL(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("https://") || lower.hasPrefix("http://")
    }

    /// `value` as one urlencoded form value (for links carrying a filter).
    static func formEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5a, 0x61...0x7a, 0x2d, 0x2e, 0x5f, 0x7e:
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "%" + Hex.encode([byte]).uppercased()
            }
        }
        return out
    }

    static func reason(_ job: Job) -> HTML {
        job.reason.isEmpty ? .empty : "<br><span class=\"why\">reason: <q>\(job.reason)</q></span>"
    }

    static func state(_ state: JobState) -> HTML {
        "<span class=\"state s-\(state.rawValue)\">\(state.rawValue.replacing("_", " "))</span>"
    }

    static func sha(_ sha: String?) -> HTML {
        guard let sha, !sha.isEmpty else { return .empty }
        return " <code title=\"\(sha)\">\(String(sha.prefix(7)))</code>"
    }

    /// `refs/heads/main` → `main`, `refs/tags/v1` → `v1`; a sha as its first 7 digits.
    static func shortRef(_ ref: String) -> String {
        for prefix in ["refs/heads/", "refs/tags/"] where ref.hasPrefix(prefix) {
            return String(ref.dropFirst(prefix.count))
        }
        return ref.utf8.count == 40 ? String(ref.prefix(7)) : ref
    }

    /// A time, relative and absolute: `<time>` with the RFC 3339 form as its `datetime` and title,
    /// the relative form as its text (the script keeps it current) followed by the absolute one.
    static func time(_ at: Int64, _ now: Int64) -> HTML {
        let iso = Clock.rfc3339(at)
        let shown = String(iso.prefix(10)) + " " + String(iso.dropFirst(11).prefix(8)) + " UTC"
        return "<time datetime=\"\(iso)\" title=\"\(iso)\" data-rel>\(relative(now - at))</time> (\(shown))"
    }

    static func relative(_ seconds: Int64) -> String {
        let a = abs(seconds)
        let (n, unit): (Int64, String) =
            a < 60 ? (a, "s") : a < 3600 ? (a / 60, "min") : a < 86400 ? (a / 3600, "h") : (a / 86400, "d")
        return seconds >= 0 ? "\(n) \(unit) ago" : "in \(n) \(unit)"
    }
}
