import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The console's job page, inbox, environment page and audit page, and the actions they post,
/// in process on `ConsoleWorld`: the same checks and records as the API, marked `via: console`,
/// and refusals that change nothing.
@Suite struct ConsolePagesTests {
    static let form = "application/x-www-form-urlencoded"

    /// A signed-in person: their `Cookie` header and the session's CSRF token.
    struct Browser {
        var cookie: String
        var csrf: String
    }

    func signIn(_ w: ConsoleWorld, _ person: String) throws -> Browser {
        let e = try w.h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes("token=" + w.h.tokens[person]!), contentType: Self.form)
        let cookie = String(try #require(e.header("Set-Cookie")).split(separator: ";")[0])
        let page = try w.h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).body
        let parts = page.split(separator: "name=\"csrf\" value=\"", maxSplits: 1)
        try #require(parts.count == 2)
        return Browser(cookie: cookie, csrf: String(parts[1].prefix { $0 != "\"" }))
    }

    func get(_ w: ConsoleWorld, _ b: Browser, _ path: String) throws -> Exchange {
        try w.h.call(Console.self, "GET", path, headers: ["Cookie": b.cookie])
    }

    func post(_ w: ConsoleWorld, _ b: Browser?, _ path: String, _ fields: String, csrf: String? = nil) throws
        -> Exchange
    {
        let token = csrf ?? b?.csrf ?? ""
        return try w.h.call(
            Console.self, "POST", path, body: bytes("csrf=\(token)&" + fields), contentType: Self.form,
            headers: b.map { ["Cookie": $0.cookie] } ?? [:])
    }

    /// The audit records `e` added.
    func added(_ e: Exchange) -> [[String: StoreSnapshot.Value]] {
        Array(e.after["audit"].records.dropFirst(e.before["audit"].records.count))
    }

    @Test func theRequesterSeesWhyNotAndTwoLeadsApproveFromTheConsole() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        let alice = try signIn(w, "alice")
        let bob = try signIn(w, "bob")
        let erin = try signIn(w, "erin")

        let hers = try get(w, alice, "/ui/jobs/\(job)")
        #expect(hers.status == 200)
        #expect(!hers.body.contains("value=\"approve\""))
        #expect(hers.body.contains("You may not approve: "), "\(hers.body)")
        #expect(hers.body.contains("self-approval") || hers.body.contains("your own"), "\(hers.body)")
        #expect(hers.body.contains("0 of 2 approvals — may approve: bob, erin"))
        #expect(hers.header("ETag") != nil && hers.header("Cache-Control") == "no-store")

        let inbox = try get(w, bob, "/ui/approvals")
        #expect(inbox.body.contains("data-job=\"\(job)\"") && inbox.body.contains("value=\"approve\""))
        #expect(try get(w, alice, "/ui/approvals").body.contains("Nothing waits for your approval."))

        w.h.snapshots = true
        let first = try post(w, bob, "/ui/jobs/\(job)/vote", "decision=approve&comment=lgtm&back=approvals")
        #expect(first.status == 303 && first.header("Location") == "/ui/approvals?done=approved&job=\(job)")
        let vote = try #require(added(first).first)
        #expect(vote["action"] == .text("approval.approve") && vote["actor"] == .text("bob"))
        #expect(vote["detail"]?.text?.contains("\"via\":\"console\"") == true)
        let row = try #require(first.after["approvals"].records.last)
        #expect(row["via"] == .text("console") && row["comment"] == .text("lgtm"))
        #expect(try Job.require(w.db, id: job).state == .awaitingApproval)

        let second = try post(w, erin, "/ui/jobs/\(job)/vote", "decision=approve")
        #expect(second.status == 303 && second.header("Location") == "/ui/jobs/\(job)?done=approved&job=\(job)")
        #expect(try Job.require(w.db, id: job).state == .dispatching)
        #expect(second.outbox.count == 1)  // the dispatch
        #expect(added(second).allSatisfy { $0["detail"]?.text?.contains("\"via\":\"console\"") == true })
        let shown = try get(w, erin, "/ui/jobs/\(job)?done=approved&job=\(job)").body
        #expect(shown.contains("You approved job \(job)."))
        #expect(shown.contains("bob approved via console for") || shown.contains("bob approved via console"))
        #expect(shown.contains("took the lock with fencing token"))
    }

    @Test func refusedVotesShowTheReasonAndChangeNothing() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        let alice = try signIn(w, "alice")
        let bob = try signIn(w, "bob")
        w.h.snapshots = true
        // Her own deploy: the page again with the problem, 403, audited as the API's refusal is.
        let own = try post(w, alice, "/ui/jobs/\(job)/vote", "decision=approve")
        #expect(own.status == 403 && own.body.contains("role=\"alert\""))
        let detail = try #require(own.after["audit"].records.last?["detail"]?.text)
        #expect(own.body.contains(HTML.escape(try #require(JSON.parse(detail)["detail"]?.stringValue))))
        own.expectRecorded(
            status: 403, type: "policy-denied", detail: try #require(JSON.parse(detail)["detail"]?.stringValue),
            .audited(actor: "alice", subject: "job/\(job)"))
        // No CSRF token, another session's, or a decision that is not one: nothing changes.
        for (fields, csrf, status, type) in [
            ("decision=approve", "", 403, "csrf-refused"), ("decision=approve", alice.csrf, 403, "csrf-refused"),
            ("decision=maybe", bob.csrf, 422, "invalid-field"),
        ] {
            let e = try post(w, bob, "/ui/jobs/\(job)/vote", fields, csrf: csrf)
            #expect(e.status == status, "\(fields) \(e.body)")
            #expect(e.header("Content-Security-Policy") == Console.contentSecurityPolicy)
            let recorded = try #require(e.after["audit"].records.last?["detail"]?.text)
            let said = try #require(JSON.parse(recorded)["detail"]?.stringValue)
            e.expectRecorded(status: status, type: type, detail: said, .audited(actor: "bob", subject: "job/\(job)"))
        }
        // A person who may not read the job: 404, as the API answers.
        let olga = try signIn(w, "olga")
        let hidden = try post(w, olga, "/ui/jobs/\(job)/vote", "decision=approve")
        #expect(hidden.status == 404 && !hidden.body.contains("v1.0.0"))
        let hiddenDetail = try #require(hidden.after["audit"].records.last?["detail"]?.text)
        hidden.expectRecorded(
            status: 404, type: "not-found", detail: try #require(JSON.parse(hiddenDetail)["detail"]?.stringValue),
            .audited(actor: "olga", subject: "job/\(job)"))
        #expect(try get(w, olga, "/ui/jobs/\(job)").status == 404)
    }

    @Test func cancelAndRollBackFromThePages() throws {
        let w = try ConsoleWorld()
        let first = try w.release("v1", as: "r1")
        let second = try w.release("v2", as: "r2")
        let running = try w.deploy("carol", "app", "demo", "feature", expect: "dispatching")
        let alice = try signIn(w, "alice")
        let carol = try signIn(w, "carol")

        // carol (a developer: deploy, no rollback grant) is told why she may not roll back.
        let page = try get(w, carol, "/ui/jobs/\(second)").body
        #expect(page.contains("You may not roll back: ") && !page.contains("action=\"/ui/jobs/\(second)/rollback\""))
        w.h.snapshots = true
        let cancelled = try post(w, carol, "/ui/jobs/\(running)/cancel", "reason=wrong+branch")
        #expect(cancelled.status == 303 && cancelled.header("Location") == "/ui/jobs/\(running)?done=cancelled")
        #expect(try Job.require(w.db, id: running).state == .cancelled)
        let record = try #require(added(cancelled).first { $0["action"] == .text("job.cancelled") })
        #expect(record["detail"]?.text?.contains("\"via\":\"console\"") == true)
        let again = try post(w, carol, "/ui/jobs/\(running)/cancel", "")
        #expect(again.status == 409 && again.body.contains("already ended"))
        again.expectRecorded(
            status: 409, type: "conflict", detail: "job \(running) is cancelled; it has already ended",
            .audited(actor: "carol", subject: "job/\(running)"))

        // The environment page: history newest first, the live release not offered, the older one offered.
        let env = try get(w, alice, "/ui/environments/app/demo")
        #expect(env.status == 200)
        #expect(env.body.contains("this release is live now"))
        let releases = try Releases.list(w.db, environment: try Job.require(w.db, id: first).environmentID, limit: 5)
        let r1 = try #require(releases.first { $0.jobID == first })
        #expect(env.body.contains("name=\"to_release\" value=\"\(r1.id)\""))
        let rolled = try post(
            w, alice, "/ui/environments/app/demo/rollback", "to_release=\(r1.id)&reason=back+to+v1")
        let location = try #require(rolled.header("Location"))
        #expect(rolled.status == 303 && location.hasPrefix("/ui/jobs/") && location.hasSuffix("?done=rollback"))
        let rollback = try #require(Int64(location.dropFirst("/ui/jobs/".count).prefix { $0 != "?" }))
        let job = try Job.require(w.db, id: rollback)
        #expect(job.kind == .rollback && job.toRelease == r1.id && job.reason == "back to v1")
        #expect(job.requestedBy == "alice" && job.state == .dispatching)
        let created = try #require(added(rolled).first { $0["action"] == .text("job.create") })
        #expect(created["detail"]?.text?.contains("\"via\":\"console\"") == true)
        // A second rollback while that one holds the lock: the queue policy queues it; from the job page.
        let fromJob = try post(w, alice, "/ui/jobs/\(second)/rollback", "")
        #expect(fromJob.status == 303)
        // carol's rollback is refused with the reason, nothing changes.
        let refused = try post(w, carol, "/ui/environments/app/demo/rollback", "to_release=\(r1.id)")
        #expect(refused.status == 403 && refused.body.contains("role=\"alert\""))
        let said = try #require(JSON.parse(try #require(refused.after["audit"].records.last?["detail"]?.text)))
        refused.expectRecorded(
            status: 403, type: "forbidden", detail: try #require(said["detail"]?.stringValue),
            .audited(actor: "carol", subject: "app/demo"))
        // olga reads only vault: app's page is a 404, as if it did not exist.
        let olga = try signIn(w, "olga")
        #expect(try get(w, olga, "/ui/environments/app/demo").status == 404)
        #expect(try get(w, olga, "/ui/environments/app/nowhere").status == 404)
    }

    @Test func theTimelineShowsHeartbeatsAndTheResultWithLinks() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "demo", "main", expect: "dispatching")
        let alice = try signIn(w, "alice")
        let before = try get(w, alice, "/ui/jobs/\(job)")
        let etag = try #require(before.header("ETag"))
        let same = try w.h.call(
            Console.self, "GET", "/ui/jobs/\(job)", headers: ["Cookie": alice.cookie, "If-None-Match": etag])
        #expect(same.status == 304)
        try w.deliver([ConsoleReadTests.ok()], at: w.h.now)
        #expect(try w.heartbeat(job, ["step": "migrate", "percent": 40, "message": "<b>schema</b>"]).status == 200)
        let beat = try w.h.call(
            Console.self, "GET", "/ui/jobs/\(job)", headers: ["Cookie": alice.cookie, "If-None-Match": etag])
        #expect(beat.status == 200 && beat.body.contains("latest heartbeat: migrate · 40 % · &lt;b&gt;schema"))
        #expect(!beat.body.contains("<b>schema</b>"))
        try w.finish(
            job, "succeeded", log: "https://ci.example/log/1", artifacts: ["javascript:alert(1)"], release: "r9")
        let done = try get(w, alice, "/ui/jobs/\(job)").body
        #expect(done.contains("the runner reported succeeded"))
        #expect(done.contains("<a href=\"https://ci.example/log/1\">log</a>"))
        #expect(!done.contains("javascript:"))
    }

    @Test func theOverviewSaysWhichRequestWasRefusedAndWhy() throws {
        let w = try ConsoleWorld()
        let refused = try w.h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "app", "environment": "prod", "ref": "main", "ref_kind": "branch"], token: "carol")
        #expect(refused.status == 403)
        let bob = try signIn(w, "bob")
        let page = try get(w, bob, "/ui/").body
        #expect(page.contains("<dt>Refused</dt><dd class=\"why\">carol's request, "), "\(page)")
        #expect(page.contains("prod accepts only tag v*; branch main does not match"))
        let olga = try signIn(w, "olga")  // reads only vault
        #expect(!(try get(w, olga, "/ui/").body.contains("Refused")))
    }

    @Test func theDeployFormSaysWhenADeployWouldWait() throws {
        let w = try ConsoleWorld()
        let alice = try signIn(w, "alice")
        #expect(!(try get(w, alice, "/ui/deploy").body.contains("busy:")))
        let running = try w.deploy("alice", "app", "demo", "main", expect: "dispatching")
        try w.deploy("bob", "app", "demo", "other", expect: "queued")
        let form = try get(w, alice, "/ui/deploy").body
        #expect(
            form.contains(
                "busy: <a href=\"/ui/jobs/\(running)\">job \(running)</a> holds the lock; "
                    + "a deploy now waits at position 2 of the queue"), "\(form)")
    }

    @Test func theOverviewPagesManyEnvironmentsAndFiltersByProject() throws {
        let w = try ConsoleWorld()
        let alice = try signIn(w, "alice")
        let all = try get(w, alice, "/ui/").body
        #expect(all.contains("data-environment=\"app/prod\"") && all.contains("data-environment=\"vault/prod\""))
        #expect(!all.contains("rel=\"next\""))  // 4 environments: one page
        let app = try get(w, alice, "/ui/?project=app")
        #expect(app.body.contains("data-environment=\"app/demo\"") && !app.body.contains("data-environment=\"vault"))
        #expect(app.body.contains("data-poll=\"/ui/?project=app\""))
        let prefix = try get(w, alice, "/ui/?project=va*").body
        #expect(prefix.contains("data-environment=\"vault/prod\"") && !prefix.contains("data-environment=\"app/"))
        #expect(try get(w, alice, "/ui/?project=nope").body.contains("No environment you may read"))
        let model = try Overview.load(
            w.db, viewer: try w.viewer("alice"), filter: Overview.Filter(project: nil, page: 9))
        #expect(model.page == 1 && model.pages == 1 && model.total == 4)  // a page past the end shows the last
    }

    @Test func theAuditPageFiltersAndShowsOnlyWhatTheViewerMayRead() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        _ = try w.deploy("bob", "vault", "prod", "v7.0.0", expect: "awaiting_approval")
        _ = try w.vote("bob", job)
        let carol = try signIn(w, "carol")
        let page = try get(w, carol, "/ui/audit").body
        #expect(page.contains("Chain verified"))
        #expect(page.contains("approval.approve") && !page.contains("v7.0.0") && !page.contains("vault/prod"))
        let filtered = try get(w, carol, "/ui/audit?person=bob&action=approval.").body
        #expect(filtered.contains("approval.approve") && !filtered.contains("job.create"))
        #expect(filtered.contains("value=\"bob\""))
        let dave = try signIn(w, "dave")  // approve on app, no read: nothing of app
        let his = try get(w, dave, "/ui/audit").body
        #expect(!his.contains("job/\(job)") && !his.contains("v1.0.0") && his.contains("console.sign-in"))
    }
}
