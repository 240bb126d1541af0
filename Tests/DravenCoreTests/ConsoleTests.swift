import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The web console in process (Harness): sign-in and its refusals, sessions, links, CSRF,
/// escaping, read grants and the headers of every answer.
@Suite struct ConsoleTests {
    static let config = """
        {
          "people": {"alice": {}, "bob": {}, "carol": {}, "dave": {}},
          "groups": {"leads": ["alice", "bob"], "developers": ["carol"]},
          "projects": {
            "shop": {
              "integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {
                "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"]},
                "demo": {"refs": ["branch:develop"], "lock": "queue"}
              }
            },
            "vault": {
              "integration": {"provider": "github", "repo": "acme/vault", "method": "workflow_dispatch",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {"secretenv": {"refs": ["branch:*"]}}
            }
          },
          "grants": [
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read"]},
            {"person": "dave", "project": "shop", "actions": ["approve"]},
            {"group": "developers", "project": "shop", "environments": ["demo"], "actions": ["deploy", "read"]}
          ]
        }
        """

    static let form = "application/x-www-form-urlencoded"

    func harness() throws -> Harness {
        try Harness(config: Self.config, people: ["alice", "bob", "carol", "dave"])
    }

    /// Signs `person` in with their token; returns the `Cookie` header value.
    func signIn(_ h: Harness, _ person: String) throws -> String {
        let token = h.tokens[person]!
        let e = try h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes("token=" + token), contentType: Self.form)
        #expect(e.status == 303, "\(e.body)")
        let cookie = try #require(e.header("Set-Cookie"))
        return String(cookie.split(separator: ";")[0])
    }

    func csrf(_ h: Harness, cookie: String) throws -> String {
        let page = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).body
        let parts = page.split(separator: "name=\"csrf\" value=\"", maxSplits: 1)
        try #require(parts.count == 2)
        return String(parts[1].prefix { $0 != "\"" })
    }

    func expectSecured(_ e: Exchange, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(e.header("Content-Security-Policy") == Console.contentSecurityPolicy, sourceLocation: sourceLocation)
        #expect(e.header("Content-Security-Policy")?.contains("unsafe-inline") == false, sourceLocation: sourceLocation)
        #expect(e.header("X-Content-Type-Options") == "nosniff", sourceLocation: sourceLocation)
        #expect(e.header("Referrer-Policy") == "no-referrer", sourceLocation: sourceLocation)
    }

    @Test func browsersAreSentToTheConsoleAndAPIClientsGetTheIndex() throws {
        let h = try harness()
        let browser = try h.call(Console.self, "GET", "/", headers: ["Accept": "text/html,application/xhtml+xml"])
        #expect(browser.status == 303)
        #expect(browser.header("Location") == "/ui/")
        let api = try h.call(Console.self, "GET", "/", headers: ["Accept": "application/json"])
        let status = try h.call(Status.self, "GET", "/")
        #expect(api.status == 200 && api.response.body == status.response.body)
        #expect(api.header("Content-Type") == "application/json")
    }

    @Test func signInWithATokenSetsAStrictHttpOnlyCookie() throws {
        let h = try harness()
        let e = try h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes("token=" + h.tokens["alice"]!), contentType: Self.form)
        #expect(e.status == 303 && e.header("Location") == "/ui/")
        let cookie = try #require(e.header("Set-Cookie"))
        #expect(cookie.hasPrefix("draven_session=drs_"))
        #expect(cookie.hasSuffix("; Path=/; HttpOnly; SameSite=Strict"))
        #expect(!cookie.contains(h.tokens["alice"]!))
        let rows = e.after["sessions"].records
        #expect(rows.count == 1 && rows[0]["method"] == .text("token") && rows[0]["remote"] == .text(h.remote))
        #expect(rows[0]["expires_at"] == .int(h.now + Sessions.lifetimeSeconds))
        let audit = try #require(e.after["audit"].records.last)
        #expect(audit["action"] == .text("console.sign-in") && audit["actor"] == .text("alice"))
        #expect(audit["detail"]?.text?.contains("\"via\":\"console\"") == true)
        expectSecured(e)
        let page = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": String(cookie.split(separator: ";")[0])])
        #expect(page.status == 200 && page.body.contains("Signed in as <strong>alice</strong>"))
        #expect(page.header("Cache-Control") == "no-store")
        expectSecured(page)
    }

    @Test func overTLSTheCookieIsHostPrefixedAndSecure() throws {
        let request = Request(method: "POST", path: "/ui/sign-in")
        var tls = request
        tls.isTLS = true
        #expect(SessionCookie.attributes(tls).name == "__Host-draven_session")
        #expect(SessionCookie.attributes(tls).flags.hasSuffix("; Secure"))
        #expect(SessionCookie.attributes(request).name == "draven_session")
        // Over TLS only the __Host- cookie is read (a plain one could have been set by a sibling host).
        #expect(SessionCookie.value(in: "draven_session=drs_x", true) == nil)
        #expect(SessionCookie.value(in: "a=b; __Host-draven_session=drs_y", true) == "drs_y")
    }

    @Test(
        arguments: [
            (
                "a wrong token", "token=drv_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", [:], 401,
                "unauthenticated"
            ),
            ("no token", "token=", [:], 401, "unauthenticated"),
            ("garbage", "token=hunter2", [:], 401, "unauthenticated"),
            ("from another site", "token=TOKEN", ["Sec-Fetch-Site": "cross-site"], 403, "csrf-refused"),
            (
                "from another origin", "token=TOKEN", ["Origin": "https://evil.example", "Host": "127.0.0.1"], 403,
                "csrf-refused"
            ),
        ] as [(String, String, [String: String], Int, String)])
    func signInRefusalsAreCountedAndChangeNothing(
        _ name: String, _ body: String, _ headers: [String: String], _ status: Int, _ type: String
    ) throws {
        let h = try harness()
        let real = body.hasSuffix("TOKEN") ? String(body.dropLast(5)) + h.tokens["alice"]! : body
        let e = try h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes(real), contentType: Self.form, headers: headers)
        #expect(e.status == status, "\(name): \(e.body)")
        #expect(e.header("Content-Type") == "text/html; charset=utf-8")
        #expect(e.header("Set-Cookie") == nil)
        expectSecured(e)
        let detail = Problem(type == "csrf-refused" ? csrfError(headers) : .unauthenticated).detail
        e.expectRecorded(status: status, type: type, detail: detail, .counted)
    }

    func csrfError(_ headers: [String: String]) -> DravenError {
        headers["Sec-Fetch-Site"] != nil
            ? .csrf("the form was posted from another site (cross-site)")
            : .csrf("the form was posted from another origin")
    }

    @Test func aRevokedTokenCannotSignIn() throws {
        let h = try harness()
        _ = try h.store.db.immediate { tx in
            try Tokens.revoke(
                tx, publicID: String(h.tokens["carol"]!.split(separator: "_")[1]), actor: "test", now: h.now)
        }
        let e = try h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes("token=" + h.tokens["carol"]!), contentType: Self.form)
        #expect(e.status == 401 && e.body.contains("That token is not valid"))
    }

    @Test func signOutNeedsTheSessionsOwnCSRFToken() throws {
        let h = try harness()
        let mine = try signIn(h, "alice")
        let other = try signIn(h, "alice")
        let othersToken = try csrf(h, cookie: other)
        let detail = "the form's CSRF token is missing or is not this session's; reload the page and retry"
        for body in ["", "csrf=", "csrf=" + othersToken, "csrf=" + String(repeating: "0", count: 64)] {
            let e = try h.call(
                Console.self, "POST", "/ui/sign-out", body: bytes(body), contentType: Self.form,
                headers: ["Cookie": mine])
            #expect(e.status == 403, "\(body): \(e.body)")
            expectSecured(e)
            e.expectRecorded(status: 403, type: "csrf-refused", detail: detail, .audited(actor: "alice", subject: ""))
        }
        let token = try csrf(h, cookie: mine)
        let out = try h.call(
            Console.self, "POST", "/ui/sign-out", body: bytes("csrf=" + token), contentType: Self.form,
            headers: ["Cookie": mine])
        #expect(out.status == 303 && out.header("Location") == "/ui/sign-in")
        #expect(out.header("Set-Cookie")?.hasSuffix("Max-Age=0") == true)
        #expect(out.after["audit"].records.last?["action"] == .text("console.sign-out"))
        let after = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": mine])
        #expect(after.status == 303 && after.header("Location") == "/ui/sign-in")
        // The other session lives on.
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": other]).status == 200)
    }

    @Test func sessionsEndWhenIdleExpiredOrRevoked() throws {
        let h = try harness()
        let cookie = try signIn(h, "bob")
        let id = try #require(h.store.db.first("SELECT public_id FROM sessions") { $0.text(0) })
        h.store.now += Sessions.idleSeconds - 1
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).status == 200)  // touched
        h.store.now += Sessions.idleSeconds - 1
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).status == 200)
        h.store.now += Sessions.idleSeconds + 1
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).status == 303)
        let fresh = try signIn(h, "bob")
        h.store.now += Sessions.lifetimeSeconds
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": fresh]).status == 303)
        let third = try signIn(h, "bob")
        let thirdID = try #require(h.store.db.first("SELECT public_id FROM sessions ORDER BY id DESC") { $0.text(0) })
        #expect(thirdID != id)
        _ = try h.store.db.immediate { tx in try Sessions.revoke(tx, publicID: thirdID, actor: "cli:test", now: h.now) }
        #expect(try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": third]).status == 303)
    }

    @Test func aLinkSignsInOnceBeforeItExpiresAndItsPageChangesNothing() throws {
        let h = try harness()
        let key = try Tokens.loadKey(h.store.paths)
        let link = try h.store.db.immediate { tx in
            try SignInLinks.create(tx, person: "alice", ttl: 900, actor: "cli:test", key: key, now: h.now)
        }
        let page = try h.call(Console.self, "GET", "/ui/link/" + link.token)
        #expect(page.status == 200 && page.body.contains("Sign in as alice"))
        page.expectUnchanged("a link's page (a preview bot's GET) uses nothing")
        expectSecured(page)
        let used = try h.call(
            Console.self, "POST", "/ui/link/" + link.token, body: bytes("x=1"), contentType: Self.form)
        #expect(used.status == 303 && used.header("Set-Cookie")?.hasPrefix("draven_session=drs_") == true)
        #expect(used.after["sessions"].records.last?["method"] == .text("link"))
        #expect(used.after["sign_in_links"].records.last?["used_at"] == .int(h.now))
        let detail = "this sign-in link was already used, has expired, or does not exist; ask for a new one"
        let again = try h.call(
            Console.self, "POST", "/ui/link/" + link.token, body: bytes("x=1"), contentType: Self.form)
        #expect(again.status == 404 && again.header("Set-Cookie") == nil)
        again.expectRecorded(status: 404, type: "not-found", detail: detail, .counted)
        let late = try h.store.db.immediate { tx in
            try SignInLinks.create(tx, person: "bob", ttl: 60, actor: "cli:test", key: key, now: h.now)
        }
        h.store.now += 61
        let expired = try h.call(
            Console.self, "POST", "/ui/link/" + late.token, body: bytes("x=1"), contentType: Self.form)
        #expect(expired.status == 404)
        expired.expectRecorded(status: 404, type: "not-found", detail: detail, .counted)
        #expect(try h.call(Console.self, "GET", "/ui/link/" + late.token).status == 404)
    }

    @Test func theOverviewShowsStateEscapedAndOnlyWhatTheViewerMayRead() throws {
        let h = try harness()
        h.snapshots = false
        let evil = "<script>alert(1)</script>"
        let deploy = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "shop", "environment": "demo", "ref": "develop", "reason": .string(evil)], token: "alice")
        #expect(deploy.status == 201, "\(deploy.body)")
        let queued = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "shop", "environment": "demo", "ref": "develop"], token: "carol")
        #expect(queued.json?["state"]?.stringValue == "queued")
        let gated = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "shop", "environment": "prod", "ref": "v1.0.0"], token: "alice")
        #expect(gated.json?["state"]?.stringValue == "awaiting_approval")
        _ = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "vault", "environment": "secretenv", "ref": "main", "ref_kind": "branch"], token: "bob")

        let alice = try signIn(h, "alice")
        let page = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": alice]).body
        #expect(!page.contains(evil))
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(page.contains("dispatching</span> <a href=\"/ui/jobs/1\">job 1</a> <code>develop</code> by alice"))
        #expect(page.contains("fencing token 1"))
        #expect(page.contains("position 1 of 1"))
        #expect(page.contains("0 of 2 approvals — <span class=\"why\">may approve: bob</span>"))
        #expect(page.contains("vault") && page.contains("secretenv"))

        let carol = try signIn(h, "carol")
        let hers = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": carol]).body
        #expect(hers.contains("data-environment=\"shop/demo\""))
        #expect(!hers.contains("vault") && !hers.contains("secretenv") && !hers.contains("shop/prod"))
        #expect(!hers.contains("v1.0.0"))
    }

    @Test func aPollWithTheSameETagIs304UntilSomethingChanges() throws {
        let h = try harness()
        let cookie = try signIn(h, "alice")
        let first = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie])
        let etag = try #require(first.header("ETag"))
        let again = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie, "If-None-Match": etag])
        #expect(again.status == 304 && again.response.body.isEmpty)
        expectSecured(again)
        _ = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "shop", "environment": "demo", "ref": "develop"],
            token: "alice")
        let changed = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie, "If-None-Match": etag])
        #expect(changed.status == 200 && changed.header("ETag") != etag)
    }

    @Test func assetsAreHashedAndImmutable() throws {
        let h = try harness()
        let css = try h.call(Console.self, "GET", Assets.stylePath)
        #expect(css.status == 200 && css.header("Content-Type") == "text/css; charset=utf-8")
        #expect(css.header("Cache-Control") == "public, max-age=31536000, immutable")
        #expect(css.body.contains("prefers-color-scheme:dark"))
        expectSecured(css)
        let js = try h.call(Console.self, "GET", Assets.scriptPath)
        #expect(js.status == 200 && js.header("Content-Type") == "text/javascript; charset=utf-8")
        let stale = try h.call(Console.self, "GET", "/ui/assets/console-0000000000000000.css")
        #expect(stale.status == 404 && stale.header("Cache-Control") == "no-store")
        expectSecured(stale)
        let signInPage = try h.call(Console.self, "GET", "/ui/sign-in")
        #expect(signInPage.body.contains("<label for=\"token\">") && signInPage.body.contains(Assets.stylePath))
        expectSecured(signInPage)
    }

    @Test func escapingCoversEveryMarkupCharacter() {
        let value = "<a href=\"x\" onclick='y'>&</a>"
        let html: HTML = "<p title=\"\(value)\">\(value)</p>"
        #expect(
            html.text == "<p title=\"&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;\">"
                + "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;</p>")
    }

    @Test func theDeployFormGoesThroughTheAPIsCodeAndShowsARefusalByItsField() throws {
        let h = try harness()
        let alice = try signIn(h, "alice")
        let page = try h.call(Console.self, "GET", "/ui/deploy", headers: ["Cookie": alice])
        #expect(page.status == 200)
        #expect(page.body.contains("<option value=\"shop/demo\">") && page.body.contains("vault/secretenv"))
        #expect(page.body.contains("<code>shop/prod</code> accepts tag v*; needs 2 approvals"))
        let carol = try signIn(h, "carol")
        let hers = try h.call(Console.self, "GET", "/ui/deploy", headers: ["Cookie": carol]).body
        #expect(hers.contains("shop/demo") && !hers.contains("shop/prod") && !hers.contains("vault"))

        let token = try csrf(h, cookie: alice)
        func post(_ fields: String) throws -> Exchange {
            try h.call(
                Console.self, "POST", "/ui/deploy", body: bytes("csrf=\(token)&" + fields), contentType: Self.form,
                headers: ["Cookie": alice])
        }
        let refused = try post("target=shop%2Fdemo&ref=main&reason=%3Cb%3Ex%3C%2Fb%3E&key=k1")
        #expect(refused.status == 403)
        let detail = "demo accepts only branch develop; branch main does not match"
        #expect(refused.body.contains("<p class=\"error\" id=\"ref-error\" role=\"alert\">\(detail)</p>"))
        #expect(refused.body.contains("aria-describedby=\"ref-error\""))
        #expect(refused.body.contains("value=\"&lt;b&gt;x&lt;/b&gt;\""))  // what was typed, kept and escaped
        refused.expectRecorded(
            status: 403, type: "policy-denied", detail: detail, .audited(actor: "alice", subject: "shop/demo"))
        let noCSRF = try h.call(
            Console.self, "POST", "/ui/deploy", body: bytes("target=shop%2Fdemo&ref=develop"), contentType: Self.form,
            headers: ["Cookie": alice])
        let none = try h.store.count("jobs")
        #expect(noCSRF.status == 403 && none == 0)

        let made = try post("target=shop%2Fdemo&ref=develop&reason=from+the+form&key=k2")
        #expect(made.status == 303 && made.header("Location") == "/ui/?done=deployed&job=1")
        let job = try #require(try Job.find(h.store.db, id: 1))
        #expect(job.state == .dispatching && job.reason == "from the form" && job.requestedBy == "alice")
        #expect(job.ref == "refs/heads/develop")
        let again = try post("target=shop%2Fdemo&ref=develop&reason=from+the+form&key=k2")
        let one = try h.store.count("jobs")
        #expect(again.status == 303 && one == 1)  // the same form twice: one job
    }

    static let proxied =
        "{\"console\": {\"proxy_user_header\": \"X-Remote-User\", \"trusted_proxies\": [\"192.0.2.9\"]},"
        + config.drop { $0 != "{" }.dropFirst()

    @Test func aTrustedProxysHeaderSignsInOnlyFromItsAddresses() throws {
        let h = try Harness(config: Self.proxied, people: ["alice"])
        let spoofed = try h.call(Console.self, "GET", "/ui/sign-in", headers: ["X-Remote-User": "alice"])
        #expect(spoofed.status == 200 && spoofed.header("Set-Cookie") == nil && spoofed.body.contains("API token"))
        spoofed.expectUnchanged("a header from an untrusted address is not believed")
        h.remote = "192.0.2.9"
        let none = try h.call(Console.self, "GET", "/ui/sign-in")
        #expect(none.status == 200 && none.header("Set-Cookie") == nil)
        let proxied = try h.call(Console.self, "GET", "/ui/sign-in", headers: ["X-Remote-User": "alice"])
        #expect(proxied.status == 303 && proxied.header("Set-Cookie")?.hasPrefix("draven_session=drs_") == true)
        #expect(proxied.after["sessions"].records.last?["method"] == .text("proxy"))
        #expect(proxied.after["audit"].records.last?["action"] == .text("console.sign-in"))
        let unknown = try h.call(Console.self, "GET", "/ui/sign-in", headers: ["X-Remote-User": "mallory"])
        unknown.expectRecorded(
            status: 404, type: "not-found",
            detail: "the proxy signed in mallory, who is not a person of the configuration",
            .audited(actor: "proxy:mallory", subject: ""))
        // Without the header configured, nothing is believed from anywhere.
        let plain = try harness()
        plain.remote = "192.0.2.9"
        let ignored = try plain.call(Console.self, "GET", "/ui/sign-in", headers: ["X-Remote-User": "alice"])
        #expect(ignored.status == 200 && ignored.header("Set-Cookie") == nil)
    }

    @Test func aProxyHeaderNeedsTrustedAddresses() throws {
        let text = "{\"console\": {\"proxy_user_header\": \"X-Remote-User\"}}"
        #expect(throws: ConfigError.self) { try Config.validate(try JSON.parse(text), file: "t.json") }
        let bad = "{\"console\": {\"proxy_user_header\": \"X Remote\", \"trusted_proxies\": [\"10.0.0.1\"]}}"
        #expect(throws: ConfigError.self) { try Config.validate(try JSON.parse(bad), file: "t.json") }
    }
}
