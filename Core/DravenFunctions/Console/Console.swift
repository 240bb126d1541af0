package import DravenCore

/// The web console: server-rendered HTML under `/ui/` (and `GET /` for browsers). Routes:
/// `GET /` (303 to `/ui/` for a browser, else the JSON index), `GET /ui/` (the overview),
/// `GET|POST /ui/sign-in` (an API token), `GET|POST /ui/link/{token}` (a one-time link: GET shows
/// a button, POST uses it), `POST /ui/sign-out`, `GET|POST /ui/deploy` (the deploy form,
/// `DeployForm`), `GET /ui/jobs/{id}` (`JobPage`; its whole log: `GET /ui/jobs/{id}/log`) with its
/// actions (`POST /ui/jobs/{id}/vote`, `/cancel`, `/rollback`: `ConsoleActions`), `GET /ui/approvals`, `GET
/// /ui/environments/{project}/{environment}` (and `POST …/rollback`: "roll back to this"),
/// `GET /ui/audit` (`ListPages`), the plans (`GET /ui/plans`, `GET /ui/plans/{id}` with its run form
/// posting to `/ui/plans/{id}/runs`: `PlanPages`) and their runs (`GET /ui/runs/{id}` with its
/// actions: `POST /ui/runs/{id}/steps/{step}/vote`, `…/retry`, `/ui/runs/{id}/cancel`: `RunPage`),
/// `GET /ui/assets/{name}`.
///
/// Every answer carries the console's security headers (`secured`); every POST of a signed-in
/// page must carry the session's CSRF token, and a POST that comes from another site
/// (`Sec-Fetch-Site`, `Origin`) is refused before anything else. Errors are answered as HTML
/// pages here (not problem+json), with refusals recorded exactly as `CGI.answer` records them
/// (a person's refusal audited as `console.refused`, an anonymous one counted).
package enum Console: Function {
    package static let name = "console"
    package static let maxBodyBytes = 16 * 1024

    static let router = Router<RouteHandler>([
        (Route("GET", "/"), root),
        (Route("GET", "/ui"), overview),
        (Route("GET", "/ui/sign-in"), signInPage),
        (Route("POST", "/ui/sign-in"), signIn),
        (Route("GET", "/ui/link/{token}"), linkPage),
        (Route("POST", "/ui/link/{token}"), useLink),
        (Route("POST", "/ui/sign-out"), signOut),
        (Route("GET", "/ui/deploy"), DeployForm.page),
        (Route("POST", "/ui/deploy"), DeployForm.post),
        (Route("GET", "/ui/jobs/{id}"), JobPage.page),
        (Route("GET", "/ui/jobs/{id}/log"), JobPage.log),
        (Route("POST", "/ui/jobs/{id}/vote"), ConsoleActions.vote),
        (Route("POST", "/ui/jobs/{id}/cancel"), ConsoleActions.cancel),
        (Route("POST", "/ui/jobs/{id}/rollback"), ConsoleActions.rollBackJob),
        (Route("GET", "/ui/approvals"), ListPages.inbox),
        (Route("GET", "/ui/environments/{project}/{environment}"), ListPages.environment),
        (Route("POST", "/ui/environments/{project}/{environment}/rollback"), ConsoleActions.rollBackEnvironment),
        (Route("GET", "/ui/audit"), ListPages.audit),
        (Route("GET", "/ui/plans"), PlanPages.list),
        (Route("GET", "/ui/plans/{id}"), PlanPages.page),
        (Route("POST", "/ui/plans/{id}/runs"), PlanPages.start),
        (Route("GET", "/ui/runs/{id}"), RunPage.page),
        (Route("POST", "/ui/runs/{id}/steps/{step}/vote"), RunPage.vote),
        (Route("POST", "/ui/runs/{id}/steps/{step}/retry"), RunPage.retry),
        (Route("POST", "/ui/runs/{id}/cancel"), RunPage.cancel),
        (Route("GET", "/ui/assets/{name}"), asset),
    ])

    /// The Content-Security-Policy of every console answer: nothing inline, nothing from elsewhere.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    package static func respond(to request: Request, context: Context) throws -> Response {
        context.via = "console"
        let response: Response
        do {
            let (handler, params) = try router.resolve(request)
            response = try handler(request, params, context)
        } catch {
            response = refusal(error, request, context)
        }
        return secured(response)
    }

    /// Adds the headers every console answer carries; pages (not the hashed assets) are never cached.
    static func secured(_ response: Response) -> Response {
        var out = response
        out.headers += [
            ("Content-Security-Policy", contentSecurityPolicy), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
        ]
        if !out.headers.contains(where: { $0.0 == "Cache-Control" }) {
            out.headers.append(("Cache-Control", "no-store"))
        }
        return out
    }

    /// The HTML answer for a thrown error: the problem's status and detail on a page, the refusal
    /// recorded (`Context.auditRefusal`), an internal error logged with its request id.
    static func refusal(_ error: any Error, _ request: Request, _ context: Context) -> Response {
        let problem = Problem(any: error, requestID: context.requestID)
        if problem.status >= 500 {
            Log.error("request failed", ["request.id": context.requestID, "function": name, "error": "\(error)"])
        } else {
            context.auditRefusal(problem)
        }
        var response: Response
        if case DravenError.unauthenticated = error, request.path.hasPrefix("/ui/sign-in") {
            response = Pages.signIn(
                error: "That token is not valid: it is unknown, revoked, or its person is disabled.")
        } else {
            response = Pages.problem(problem, signedIn: context.principal)
        }
        response.status = problem.status
        for header in problem.headers where header.0 == "Allow" || header.0 == "Retry-After" {
            response.headers.append(header)
        }
        return response
    }

    // MARK: - routes

    static func root(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        guard wantsHTML(request) else { return ServiceIndex.response }
        return Response(status: 303, headers: [("Location", "/ui/"), ("Vary", "Accept")])
    }

    static func overview(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let q = request.queryItems
        let project = q["project"].flatMap { $0.isEmpty ? nil : String($0.prefix(65)) }
        let filter = Overview.Filter(project: project, page: q["page"].flatMap { Int($0) } ?? 1)
        var path = "/ui/"
        var query: [String] = []
        if let project { query.append("project=" + Pages.formEncode(project)) }
        if filter.page > 1 { query.append("page=\(filter.page)") }
        if !query.isEmpty { path += "?" + query.joined(separator: "&") }
        return try polled(request, context, path: path) { session, etag in
            let model = try Overview.load(try context.db(), viewer: session.principal, now: context.now, filter: filter)
            return Pages.overview(
                model, session: session, poll: (path, etag), filter: filter, notice: notice(request), now: context.now)
        }
    }

    /// The sign-in form, or (with `[console] proxy_user_header` configured, from a trusted proxy's
    /// address) a session for the person the proxy's header names (`ProxySignIn`).
    static func signInPage(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        if try SessionCookie.session(request, context) != nil {
            return Response(status: 303, headers: [("Location", "/ui/")])
        }
        let db = try context.db()
        switch try ProxySignIn.claim(db, request) {
        case .none:
            return Pages.signIn(error: nil)
        case .unknown(let handle):
            context.caller = "proxy:\(handle)"
            throw DravenError.notFound(what: "the proxy signed in \(handle), who is not a person of the configuration")
        case .person(let id, let handle):
            context.principal = Principal(personID: id, handle: handle, tokenID: 0)
            let key = try Tokens.loadKey(context.paths)
            let created = try db.immediate { tx in
                try Sessions.create(
                    tx, personID: id, handle: handle, method: .proxy, remote: request.remoteAddress, key: key,
                    now: context.now)
            }
            return SessionCookie.set(created.cookie, request)
        }
    }

    /// A token form: the token is verified exactly as the API verifies a bearer token.
    static func signIn(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try requireSameOrigin(request)
        let form = try formItems(request)
        guard let token = form["token"]?.trimmingSpaces(), !token.isEmpty else { throw DravenError.unauthenticated }
        let db = try context.db()
        let key = try Tokens.loadKey(context.paths)
        guard let principal = try Tokens.verify(db, token: token, key: key) else { throw DravenError.unauthenticated }
        context.principal = principal
        let created = try db.immediate { tx in
            try Sessions.create(
                tx, personID: principal.personID, handle: principal.handle, method: .token,
                remote: request.remoteAddress, key: key, now: context.now)
        }
        return SessionCookie.set(created.cookie, request)
    }

    static func linkPage(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let token = params["token"] ?? ""
        let db = try context.db()
        let key = try Tokens.loadKey(context.paths)
        guard let link = try SignInLinks.usable(db, token: token, key: key, now: context.now) else {
            throw unusableLink
        }
        return Pages.link(token: token, handle: link.handle, expiresAt: link.expiresAt, now: context.now)
    }

    static func useLink(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try requireSameOrigin(request)
        let token = params["token"] ?? ""
        let db = try context.db()
        let key = try Tokens.loadKey(context.paths)
        let used = try db.immediate { tx in
            try SignInLinks.consume(tx, token: token, remote: request.remoteAddress, key: key, now: context.now)
        }
        guard let used else { throw unusableLink }
        let (link, session) = used
        context.principal = Principal(personID: link.personID, handle: link.handle, tokenID: 0)
        return SessionCookie.set(session.cookie, request)
    }

    static func signOut(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let session = try requireForm(request, context)
        let db = try context.db()
        _ = try db.immediate { tx in
            try Sessions.revoke(
                tx, publicID: session.publicID, actor: session.principal.handle, action: "console.sign-out",
                now: context.now)
        }
        var response = Response(status: 303, headers: [("Location", "/ui/sign-in")])
        response.headers.append(("Set-Cookie", SessionCookie.clear(request)))
        return response
    }

    static func asset(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        guard let response = Assets.response(params["name"] ?? "") else {
            throw DravenError.notFound(what: "no asset \(params["name"] ?? "")")
        }
        return response
    }

    // MARK: - pages

    /// A page that polls itself (`path`, its own address without the query): `304 Not Modified`
    /// when the request's `If-None-Match` is its ETag, else `render(session, etag)` with the ETag.
    /// Without a session, 303 to the sign-in page. Each view counts as the session's activity.
    /// `version`: what else the page shows that the store's version does not follow (a job's log).
    static func polled(
        _ request: Request, _ context: Context, path: String, version: (Database) throws -> String = { _ in "" },
        render: (Sessions.Live, String) throws -> Response
    ) throws -> Response {
        guard let session = try SessionCookie.session(request, context) else { return toSignIn }
        let db = try context.db()
        let extra = try version(db)
        let etag = try etag(db, session, page: extra.isEmpty ? path : path + "#" + extra)
        try Sessions.touch(db, session, now: context.now)
        if request.header("if-none-match") == etag { return Response(status: 304, headers: [("ETag", etag)]) }
        var response = try render(session, etag)
        response.headers.append(("ETag", etag))
        return response
    }

    /// A page's ETag: the store's version as the viewer's pages see it (`Overview.version`: any
    /// job move, audit record, configuration change or heartbeat changes it), the page, the session.
    static func etag(_ db: Database, _ session: Sessions.Live, page: String) throws -> String {
        let version = try Overview.version(db, person: session.principal.personID) + "." + page + "." + session.publicID
        return "\"" + Sodium.hashHex(Array(version.utf8)).prefix(32) + "\""
    }

    /// A line above a page's content: what an action did, or why it was refused.
    struct Notice {
        var text: String
        var refusal: Bool
        /// A job the notice is about, linked after the text.
        var job: Int64? = nil

        var html: HTML {
            let link: HTML = job.map { " \(Pages.jobLink($0))" } ?? .empty
            return refusal
                ? "<p class=\"alert bad\" role=\"alert\" id=\"notice\">\(text)\(link)</p>"
                : "<p class=\"alert ok\" role=\"status\" id=\"notice\">\(text)\(link)</p>"
        }
    }

    /// The outcome a 303 after an action names (`?done=…&job=…`), in the console's own words.
    static func notice(_ request: Request) -> Notice? {
        let q = request.queryItems
        let job = q["job"].flatMap { Int64($0) }.map { "job \($0)" } ?? "the job"
        let text: String
        switch q["done"] {
        case "approved"?: text = "You approved \(job)."
        case "rejected"?: text = "You rejected \(job)."
        case "repeat"?: text = "Your vote on \(job) was already counted."
        case "cancelled"?: text = "You cancelled this job."
        case "rollback"?: text = "Rollback requested: this is the rollback job."
        case "started"?: text = "You started this run."
        case "run-cancelled"?: text = "You cancelled this run."
        case "step-approved"?, "step-rejected"?, "step-retried"?:
            let named = q["step"].flatMap {
                $0.isEmpty || $0.utf8.count > 64 || !$0.utf8.allSatisfy(isStepByte) ? nil : $0
            }
            let step = named.map { "step \($0)" } ?? "the step"
            let done = q["done"] == "step-approved" ? "approved" : q["done"] == "step-rejected" ? "rejected" : "retried"
            text = "You \(done) \(step)."
        case "deployed"?:
            return Notice(text: "Deploy requested:", refusal: false, job: q["job"].flatMap { Int64($0) })
        default: return nil
        }
        return Notice(text: text, refusal: false)
    }

    /// A byte of a plan step's id (`[a-z0-9_-]`): a notice names only a step that could exist.
    static func isStepByte(_ b: UInt8) -> Bool {
        (0x61...0x7a).contains(b) || (0x30...0x39).contains(b) || b == 0x5f || b == 0x2d
    }

    // MARK: - checks

    static let toSignIn = Response(status: 303, headers: [("Location", "/ui/sign-in")])

    static let unusableLink = DravenError.notFound(
        what: "this sign-in link was already used, has expired, or does not exist; ask for a new one")

    /// Whether the client asks for HTML (a browser's `Accept`).
    static func wantsHTML(_ request: Request) -> Bool {
        (request.header("accept") ?? "").lowercased().contains("text/html")
    }

    /// The signed-in session of a form post whose CSRF token is that session's.
    /// - Throws: `.unauthenticated` without a live session; `.csrf` when the token is missing or
    ///   not this session's, or the post comes from another site. Nothing is changed either way.
    static func requireForm(_ request: Request, _ context: Context) throws -> Sessions.Live {
        guard let session = try SessionCookie.session(request, context) else { throw DravenError.unauthenticated }
        try requireSameOrigin(request)
        guard Sessions.csrfMatches(try formItems(request)["csrf"], session) else {
            throw DravenError.csrf(
                "the form's CSRF token is missing or is not this session's; reload the page and retry")
        }
        return session
    }

    /// Refuses a post another site made the browser send (login CSRF included): `Sec-Fetch-Site`
    /// other than `same-origin` or `none` (every current browser sends it); without it, an `Origin`
    /// whose host is not this request's `Host`. (`Origin: null` says nothing: browsers send it for
    /// every post from a page whose Referrer-Policy is `no-referrer`, as the console's pages are.)
    static func requireSameOrigin(_ request: Request) throws {
        if let site = request.header("sec-fetch-site")?.lowercased() {
            guard site == "same-origin" || site == "none" else {
                throw DravenError.csrf("the form was posted from another site (\(site))")
            }
            return
        }
        if let origin = request.header("origin"), origin != "null" {
            let bare = origin.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
            guard bare == request.header("host") else {
                throw DravenError.csrf("the form was posted from another origin")
            }
        }
    }

    /// The urlencoded form of a POST.
    /// - Throws: `.unsupportedMediaType` for any other body.
    static func formItems(_ request: Request) throws -> [String: String] {
        guard request.mediaType == "application/x-www-form-urlencoded" else {
            throw DravenError.unsupportedMediaType(
                expected: "application/x-www-form-urlencoded", got: request.contentType)
        }
        return request.formItems
    }
}

/// The console's session cookie: `__Host-draven_session` with `Secure` over TLS, `draven_session`
/// over plain HTTP (a `__Host-` cookie must be `Secure`); always `HttpOnly; SameSite=Strict; Path=/`,
/// and no `Max-Age` (a browser-session cookie; the store ends the session itself).
enum SessionCookie {
    static let secureName = "__Host-draven_session"
    static let plainName = "draven_session"

    /// The live session the request's cookie names; also makes its person the request's principal
    /// (so a refusal is audited under them).
    static func session(_ request: Request, _ context: Context) throws -> Sessions.Live? {
        guard let value = value(in: request.header("cookie") ?? "", request.isTLS) else { return nil }
        let db = try context.db()
        let key = try Tokens.loadKey(context.paths)
        guard let session = try Sessions.verify(db, cookie: value, key: key, now: context.now) else { return nil }
        context.principal = session.principal
        return session
    }

    /// The session cookie's value in a `Cookie` header: over TLS only the `__Host-` one.
    static func value(in header: String, _ tls: Bool) -> String? {
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = String(parts[0]).trimmingSpaces()
            if name == secureName || (!tls && name == plainName) { return String(parts[1]).trimmingSpaces() }
        }
        return nil
    }

    static func attributes(_ request: Request) -> (name: String, flags: String) {
        request.isTLS
            ? (secureName, "; Path=/; HttpOnly; SameSite=Strict; Secure")
            : (plainName, "; Path=/; HttpOnly; SameSite=Strict")
    }

    /// 303 to the overview, setting the cookie.
    static func set(_ cookie: String, _ request: Request) -> Response {
        let (name, flags) = attributes(request)
        return Response(status: 303, headers: [("Location", "/ui/"), ("Set-Cookie", name + "=" + cookie + flags)])
    }

    static func clear(_ request: Request) -> String {
        let (name, flags) = attributes(request)
        return name + "=" + flags + "; Max-Age=0"
    }
}
