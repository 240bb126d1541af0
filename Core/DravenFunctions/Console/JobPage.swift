package import DravenCore

/// `GET /ui/jobs/{id}`: one job's whole story (`JobTimeline`) and what the viewer may do about it
/// (`JobActions`): approve or reject with a comment, cancel, roll back, each a form posting to
/// `ConsoleActions`; for each action the viewer may not take, why not. Polls like the overview
/// (ETag of the store's version, the job, its log and the session). Its "Log" section shows the end
/// of the job's archived log (`JobLogs`), escaped, with a link to the whole of it (`log`).
enum JobPage {
    static func page(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = try params.id("id")
        context.subject = "job/\(id)"
        return try Console.polled(
            request, context, path: "/ui/jobs/\(id)", version: { try logVersion($0, id) },
            render: { session, etag in
                try render(session, context, job: id, notice: Console.notice(request), etag: etag)
            })
    }

    /// The log's part of the page's ETag: chunks write no job event.
    static func logVersion(_ db: Database, _ job: Int64) throws -> String {
        "log" + String(try JobLogs.version(db, job: job))
    }

    /// `GET /ui/jobs/{id}/log`: the job's whole archived log as text (what `GET /api/v1/jobs/{id}/log`
    /// answers, for a signed-in viewer with a `read` grant; otherwise the job is not found).
    static func log(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = try params.id("id")
        context.subject = "job/\(id)"
        guard let session = try SessionCookie.session(request, context) else { return Console.toSignIn }
        let db = try context.db()
        let job = try Job.require(db, id: id)
        try Grants.require(db, session.principal, .read, job: job)
        try Sessions.touch(db, session, now: context.now)
        let log = try JobLogs.read(db, job: id, after: 0)
        return Response(
            status: 200,
            headers: [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Disposition", "inline; filename=\"job-\(id).log\""),
            ],
            body: log.bytes)
    }

    /// The page; `notice` is an outcome or a refusal to show above the actions.
    static func render(
        _ session: Sessions.Live, _ context: Context, job id: Int64, notice: Console.Notice?, etag: String? = nil
    ) throws -> Response {
        let db = try context.db()
        let timeline = try JobTimeline.load(db, job: id, viewer: session.principal)
        let actions = try JobActions.for(db, job: id, viewer: session.principal, now: context.now)
        let job = timeline.job
        let now = context.now
        let path = "/ui/jobs/\(job.id)"
        let title =
            "Job \(job.id) · \(job.kind.rawValue) \(Pages.shortRef(job.ref)) to \(job.project)/\(job.environment)"
        let main: HTML = """
            <p class="why"><a href="/ui/">Overview</a> › \
            <a href="\(Pages.environmentPath(job.project, job.environment))">\(job.project)/\(job.environment)</a> \
            › job \(job.id) · As of \(Pages.time(now, now)) · <a href="\(path)">Refresh</a></p>
            <h2>\(title)</h2>
            \(notice.map(\.html) ?? .empty)
            \(summary(timeline, now: now))
            \(actionsSection(actions, session: session, now: now))
            \(try logSection(db, job, now: now))
            <section aria-labelledby="timeline"><h3 id="timeline">Timeline</h3>
            <ol class="timeline">\(timeline.entries.map { entry($0, now: now) })</ol></section>
            \(outbound(timeline.outbound, now: now))
            """
        return Pages.layout(
            title: "Job \(job.id)", session: session, main: main,
            poll: (path, try etag ?? Console.etag(db, session, page: path + "#" + logVersion(db, job.id))))
    }

    /// How much of the log the page shows: the newest chunks holding this many bytes are read, and
    /// of them as many whole lines, from the end, as fit `logHTMLBudget` once escaped (an escaped
    /// byte takes up to six), so the page stays well under 100 KB however the log looks.
    static let logTailBytes: Int64 = 32 * 1024
    static let logHTMLBudget = 40 * 1024

    /// The "Log" section: the end of the archived log, or why there is none.
    static func logSection(_ db: Database, _ job: Job, now: Int64) throws -> HTML {
        let head: HTML = "<section aria-labelledby=\"log\"><h3 id=\"log\">Log</h3>"
        guard let summary = try JobLogs.summary(db, job: job.id) else {
            guard job.state == .dispatching || job.state == .running else { return .empty }
            return "\(head)<p class=\"why\" id=\"log-status\">No output from the runner yet.</p></section>"
        }
        if let pruned = summary.prunedAt {
            return """
                \(head)<p class="why" id="log-status">Removed \(Pages.time(pruned, now)) after the retention \
                period (logs.retention).</p></section>
                """
        }
        let (raw, partial) = try JobLogs.tail(db, job: job.id, bytes: logTailBytes)
        var (text, cut) = tailLines(shown(raw), budget: logHTMLBudget)
        cut = cut || partial
        var notes: [HTML] = []
        let total = size(summary.bytes)
        notes.append(cut ? "the last \(size(Int64(text.utf8.count))) of \(total)" : "\(total)")
        if summary.cut { notes.append("cut at the per-job cap (logs.max_job_bytes)") }
        if !job.state.isTerminal { notes.append("still running: the page follows it") }
        notes.append("<a href=\"/ui/jobs/\(job.id)/log\">full log</a>")
        if text.isEmpty { text = " " }
        return """
            \(head)<p class="why" id="log-status">\(HTML.join(notes, " · "))</p>
            <pre class="log" id="log-text" tabindex="0">\(text)</pre></section>
            """
    }

    /// A log's bytes as text to show: UTF-8 (invalid bytes as U+FFFD), terminal colour and cursor
    /// sequences (ESC [ … letter) removed, other control characters but newline and tab dropped.
    static func shown(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1b, i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "[") {
                i += 2
                while i < bytes.count, !(0x40...0x7e).contains(bytes[i]) { i += 1 }
                i += 1
                continue
            }
            if b >= 0x20 || b == 0x0a || b == 0x09 { out.append(b) }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The end of `text`: whole lines from the last back while they fit `budget` escaped bytes (a
    /// single line longer than that is cut to its end); whether anything was left out.
    static func tailLines(_ text: String, budget: Int) -> (String, Bool) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        var kept: [Substring] = []
        var used = 0
        for line in lines.reversed() {
            let cost = HTML.escape(String(line)).utf8.count + 1
            if used + cost > budget {
                if kept.isEmpty {
                    // One huge line: its end, by characters, within the budget.
                    var end = Substring("")
                    for c in line.reversed() {
                        let n = HTML.escape(String(c)).utf8.count
                        if used + n > budget { break }
                        used += n
                        end.insert(c, at: end.startIndex)
                    }
                    kept.append(end)
                }
                return (kept.reversed().joined(separator: "\n") + "\n", true)
            }
            used += cost
            kept.append(line)
        }
        return (kept.reversed().joined(separator: "\n") + (kept.isEmpty ? "" : "\n"), false)
    }

    /// Bytes as people read them (B, KB, MB; 1 KB = 1,024 bytes).
    static func size(_ bytes: Int64) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        if bytes < 1 << 20 { return "\(bytes / 1024) KB" }
        let tenths = bytes * 10 / (1 << 20)
        return "\(tenths / 10).\(tenths % 10) MB"
    }

    static func summary(_ t: JobTimeline, now: Int64) -> HTML {
        let job = t.job
        var rows: [HTML] = [
            "<dt>State</dt><dd>\(Pages.state(job.state)) since \(Pages.time(job.updatedAt, now))</dd>",
            "<dt>Ref</dt><dd><code>\(job.ref)</code>\(Pages.sha(job.sha))</dd>",
            "<dt>Requested</dt><dd>by \(job.requestedBy), \(Pages.time(job.createdAt, now))</dd>",
        ]
        if !job.reason.isEmpty { rows.append("<dt>Reason</dt><dd><q>\(job.reason)</q></dd>") }
        if let lock = t.lock {
            var held: HTML = "fencing token \(lock.fencingToken)"
            if let until = lock.leaseUntil { held = "\(held) · lease ends \(Pages.time(until, now))" }
            rows.append("<dt>Lock</dt><dd>\(held)</dd>")
        }
        if let position = t.queuePosition {
            let holder: HTML = t.queueHolder.map { "held by \(Pages.jobLink($0))" } ?? "free"
            rows.append("<dt>Queue</dt><dd>position \(position); the lock is \(holder)</dd>")
        }
        if let progress = Progress(job) {
            var what: [String] = []
            if let step = progress.step { what.append("step \(step)") }
            if let percent = progress.percent { what.append("\(percent) %") }
            if let message = progress.message { what.append(message) }
            let bar: HTML =
                progress.percent.map {
                    "<progress max=\"100\" value=\"\(min(max($0, 0), 100))\">\($0) %</progress>"
                } ?? .empty
            let beat: HTML = job.heartbeatAt.map { ", heartbeat \(Pages.time($0, now))" } ?? .empty
            rows.append("<dt>Progress</dt><dd>\(what.joined(separator: " · "))\(beat)\(bar)</dd>")
        }
        var links: [HTML] = []
        if let url = job.runURL, Pages.isWebURL(url) { links.append("<a href=\"\(url)\">provider run</a>") }
        if let url = job.logURL, Pages.isWebURL(url) { links.append("<a href=\"\(url)\">log</a>") }
        if !links.isEmpty { rows.append("<dt>Links</dt><dd>\(HTML.join(links, " · "))</dd>") }
        if let parent = t.parent {
            rows.append("<dt>Started by</dt><dd>\(Pages.jobLink(parent.id)) (\(parent.kind.rawValue))</dd>")
        }
        if !t.children.isEmpty {
            let items = t.children.map { child -> HTML in
                "\(Pages.jobLink(child.id)) \(child.kind.rawValue) \(Pages.state(child.state))"
            }
            rows.append("<dt>Started</dt><dd>\(HTML.join(items, "<br>"))</dd>")
        }
        return "<dl class=\"summary\">\(rows)</dl>"
    }

    /// The viewer's actions: a form for each they may take, and why not for each they may not.
    /// Approve and reject are shown while the job awaits approval; cancel while it has not ended;
    /// roll back for jobs that make releases.
    static func actionsSection(_ a: JobActions, session: Sessions.Live, now: Int64) -> HTML {
        let job = a.job
        var tally: HTML = .empty
        var parts: [HTML] = []
        if let approvals = a.approvals {
            tally = """
                <p id="tally">\(approvals.summary); the approval window closes \(Pages.time(approvals.expiresAt, now))\
                </p>
                """
            parts.append(
                "<div>\(voteForm(job, approve: a.approve, reject: a.reject, session: session, back: nil))</div>")
        }
        if !job.state.isTerminal {
            let cancel = form(
                "cancel", "Cancel", a.cancel, action: "/ui/jobs/\(job.id)/cancel", session: session,
                field: ("reason", "Why cancel (optional)"))
            parts.append("<div>\(cancel)</div>")
        }
        if job.kind.isRelease {
            let rollBack = form(
                "rollback", "Roll back", a.rollBack, action: "/ui/jobs/\(job.id)/rollback", session: session,
                field: ("reason", "Why roll back (optional)"))
            parts.append("<div>\(rollBack)</div>")
        }
        guard !parts.isEmpty else { return .empty }
        return """
            <section aria-labelledby="actions" class="actions"><h3 id="actions">Actions</h3>\(tally)\
            <div class="grid">\(parts)</div></section>
            """
    }

    /// Approve and reject in one form sharing the comment; a decision the viewer may not take is
    /// not a button but its reason. `back`: where to go afterwards (`approvals`: the inbox).
    static func voteForm(
        _ job: Job, approve: Permission, reject: Permission, session: Sessions.Live, back: String?
    ) -> HTML {
        voteForm(
            action: "/ui/jobs/\(job.id)/vote", key: "\(job.id)", approve: approve, reject: reject, session: session,
            back: back)
    }

    /// The vote form posting to `action`; `key` makes its element ids unique on the page. With
    /// `oneCheck` (both decisions pass the same checks, as a plan's approval step), a refusal is
    /// said once ("You may not vote: …").
    static func voteForm(
        action: String, key: String, approve: Permission, reject: Permission, session: Sessions.Live, back: String?,
        oneCheck: Bool = false
    ) -> HTML {
        let refused =
            oneCheck
            ? (approve.allowed ? [] : [("vote", approve)])
            : [("approve", approve), ("reject", reject)].filter { !$0.1.allowed }
        let why = refused.map { name, permission -> HTML in
            "<p class=\"why\" id=\"why-\(name)-\(key)\">You may not \(name): \(permission.reason ?? "")</p>"
        }
        guard approve.allowed || reject.allowed else { return HTML.join(why) }
        var buttons: [HTML] = []
        if approve.allowed {
            buttons.append("<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>")
        }
        if reject.allowed {
            buttons.append(
                "<button type=\"submit\" name=\"decision\" value=\"reject\" class=\"danger\">Reject</button>")
        }
        let said = [approve.allowed ? approve.note : nil, reject.allowed ? reject.note : nil].compactMap { $0 }
        let notes: HTML = said.isEmpty ? .empty : "<p class=\"why\">\(said.joined(separator: "; "))</p>"
        let backField: HTML = back.map { "<input type=\"hidden\" name=\"back\" value=\"\($0)\">" } ?? .empty
        return """
            <form class="stack" method="post" action="\(action)">
            <input type="hidden" name="csrf" value="\(session.csrf)">\(backField)
            <label for="comment-\(key)">Comment (optional)</label>
            <input id="comment-\(key)" name="comment" type="text" maxlength="1000">
            \(notes)<div class="buttons">\(buttons)</div></form>\(why)
            """
    }

    /// One action's form with an optional text field, or why the viewer may not take it.
    static func form(
        _ name: String, _ label: String, _ permission: Permission, action: String, session: Sessions.Live,
        field: (name: String, label: String)?, hidden: [(String, String)] = []
    ) -> HTML {
        guard permission.allowed else {
            return
                "<p class=\"why\" id=\"why-\(name)\">You may not \(label.lowercased()): \(permission.reason ?? "")</p>"
        }
        let extra = hidden.map { "<input type=\"hidden\" name=\"\($0.0)\" value=\"\($0.1)\">" as HTML }
        let note: HTML = permission.note.map { "<p class=\"why\">\($0)</p>" } ?? .empty
        let input: HTML =
            field.map { field in
                let id = "\(name)-\(field.name)"
                return """
                    <label for="\(id)">\(field.label)</label>
                    <input id="\(id)" name="\(field.name)" type="text" maxlength="1000">
                    """
            } ?? .empty
        return """
            <form class="stack" method="post" action="\(action)">
            <input type="hidden" name="csrf" value="\(session.csrf)">\(extra)
            \(input)
            \(note)<div class="buttons"><button type="submit" class="danger">\(label)</button></div></form>
            """
    }

    static func entry(_ e: JobTimeline.Entry, now: Int64) -> HTML {
        let links = e.links.filter { Pages.isWebURL($0.url) }.map { "<a href=\"\($0.url)\">\($0.title)</a>" as HTML }
        let jobs = e.jobs.map { Pages.jobLink($0) }
        var related: HTML = .empty
        if !links.isEmpty || !jobs.isEmpty { related = " · \(HTML.join(links + jobs, " · "))" }
        return """
            <li class="k-\(e.kind.rawValue)">\(Pages.time(e.at, now)) <strong>\(e.kind.rawValue.replacing("_", " "))\
            </strong> \(e.summary)\(related) <span class="why">— \(e.actor)</span></li>
            """
    }

    /// Every outbound call about the job: what, its state, attempts and last error.
    static func outbound(_ rows: [Outbox.Row], now: Int64) -> HTML {
        guard !rows.isEmpty else { return .empty }
        let items = rows.map { row -> HTML in
            let state = row.state?.rawValue ?? "?"
            let error: HTML = row.lastError.map { " · <span class=\"why\">last error: \($0)</span>" } ?? .empty
            let attempts = row.attempts == 1 ? "1 attempt" : "\(row.attempts) attempts"
            return "<li>\(row.kind) — \(state), \(attempts), queued \(Pages.time(row.createdAt, now))\(error)</li>"
        }
        return """
            <section aria-labelledby="outbound"><h3 id="outbound">Outbound calls</h3><ul>\(items)</ul></section>
            """
    }
}

extension String {
    /// `self` with every `target` character replaced by `replacement`.
    func replacing(_ target: Character, _ replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
