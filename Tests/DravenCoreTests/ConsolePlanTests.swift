import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The console's plans (`/ui/plans`, `/ui/plans/{id}` and its run form) and run page
/// (`/ui/runs/{id}` and its vote, retry and cancel), in process: the read models filter by read
/// grant, the forms go through the API's code with `via: console`, and every refusal changes
/// nothing but its record (full store snapshots).
@Suite struct ConsolePlanTests {
    static let form = ConsolePagesTests.form
    typealias Browser = ConsolePagesTests.Browser

    /// `release` (an approval by two leads, then a deploy to shop/staging; pauses on failure) and
    /// `prod` (a deploy to shop/prod, which developers may not read); `zed` holds no grant.
    static func harness() throws -> Harness {
        let config = PlanEngineTests.config.replacingOccurrences(#""erin": {}"#, #""erin": {}, "zed": {}"#)
        let h = try Harness(config: config, people: ["alice", "bob", "carol", "dana", "erin", "zed"])
        let prod = Plan(
            id: "prod", version: 1, description: "straight to prod",
            steps: [PlanEngineTests.deploy("p", "shop", "prod", ref: "refs/tags/v1")])
        try h.store.db.immediate { tx in
            _ = try Plans.apply(tx, PlanRunRouteTests.plan, by: "test", now: h.now)
            _ = try Plans.apply(tx, prod, by: "test", now: h.now)
        }
        h.snapshots = false
        return h
    }

    func signIn(_ h: Harness, _ person: String) throws -> Browser {
        let e = try h.call(
            Console.self, "POST", "/ui/sign-in", body: bytes("token=" + h.tokens[person]!), contentType: Self.form)
        let cookie = String(try #require(e.header("Set-Cookie")).split(separator: ";")[0])
        let page = try h.call(Console.self, "GET", "/ui/", headers: ["Cookie": cookie]).body
        let parts = page.split(separator: "name=\"csrf\" value=\"", maxSplits: 1)
        try #require(parts.count == 2)
        return Browser(cookie: cookie, csrf: String(parts[1].prefix { $0 != "\"" }))
    }

    func get(_ h: Harness, _ b: Browser, _ path: String, headers: [String: String] = [:]) throws -> Exchange {
        try h.call(Console.self, "GET", path, headers: headers.merging(["Cookie": b.cookie]) { $1 })
    }

    func post(_ h: Harness, _ b: Browser, _ path: String, _ fields: String, csrf: String? = nil) throws -> Exchange {
        try h.call(
            Console.self, "POST", path, body: bytes("csrf=\(csrf ?? b.csrf)&" + fields), contentType: Self.form,
            headers: ["Cookie": b.cookie])
    }

    /// A refusal's answer: the page (or problem page) with the status, and one audit record.
    func expectRefusedPage(
        _ e: Exchange, _ status: Int, _ type: String, actor: String, subject: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(e.status == status, "\(e.body)", sourceLocation: sourceLocation)
        #expect(e.header("Content-Security-Policy") == Console.contentSecurityPolicy, sourceLocation: sourceLocation)
        let recorded = try #require(e.after["audit"].records.last?["detail"]?.text, sourceLocation: sourceLocation)
        let detail = try #require(JSON.parse(recorded)["detail"]?.stringValue, sourceLocation: sourceLocation)
        #expect(e.body.contains(HTML.escape(detail)), "the page says why", sourceLocation: sourceLocation)
        e.expectRecorded(
            status: status, type: type, detail: detail, .audited(actor: actor, subject: subject),
            sourceLocation: sourceLocation)
    }

    /// The run a form post started: from its 303's `Location`.
    func run(_ e: Exchange) throws -> Int64 {
        let location = try #require(e.header("Location"))
        #expect(location.hasPrefix("/ui/runs/") && location.hasSuffix("?done=started"), "\(location)")
        return try #require(Int64(location.dropFirst(9).prefix { $0 != "?" }))
    }

    @Test func thePlansAViewerMayReadWithTheirNewestRuns() throws {
        let h = try Self.harness()
        let alice = try signIn(h, "alice")
        let carol = try signIn(h, "carol")
        let zed = try signIn(h, "zed")
        let started = try post(h, carol, "/ui/plans/release/runs", "input.ref=v1.2.0&reason=ship")
        let run = try run(started)

        let hers = try get(h, carol, "/ui/plans")
        #expect(hers.status == 200 && hers.header("ETag") != nil)
        #expect(hers.body.contains("data-plan=\"release\"") && !hers.body.contains("data-plan=\"prod\""))
        #expect(hers.body.contains("2 steps: <code>approve</code> (approval), <code>stage</code> (deploy)"))
        #expect(hers.body.contains("<a href=\"/ui/runs/\(run)\">run \(run)</a> <span class=\"state s-running\">"))
        #expect(hers.body.contains("<a href=\"/ui/plans\">Plans</a>"), "the navigation links the list")
        let all = try get(h, alice, "/ui/plans").body
        #expect(all.contains("data-plan=\"prod\"") && all.contains("straight to prod"))

        let none = try get(h, zed, "/ui/plans")
        #expect(none.status == 200 && none.body.contains("You may read no plan"))
        #expect(!none.body.contains("release") && !none.body.contains("prod"))
        h.snapshots = true
        for (who, path) in [(zed, "/ui/plans/release"), (carol, "/ui/plans/prod")] {
            let e = try get(h, who, path)
            #expect(e.status == 404 && !e.body.contains("straight to prod") && !e.body.contains("approval"))
        }
        let hidden = try get(h, zed, "/ui/runs/\(run)")
        #expect(hidden.status == 404 && !hidden.body.contains("ship"))
        let page = try get(h, carol, "/ui/plans/release")
        #expect(page.status == 200)
        #expect(page.body.contains("id=\"plan-document\""))
        #expect(page.body.contains("&quot;id&quot;: &quot;release&quot;"), "the canonical document, escaped")
        #expect(page.body.contains("<li data-run=\"\(run)\">"))
        #expect(page.body.contains("a tag name, matching v*, required"))
    }

    @Test func theRunFormStartsOnceThroughTheAPIsCodeAndShowsARefusalByItsInput() throws {
        let h = try Self.harness()
        let carol = try signIn(h, "carol")
        let form = try get(h, carol, "/ui/plans/release").body
        #expect(form.contains("<form class=\"stack\" method=\"post\" action=\"/ui/plans/release/runs\">"))
        #expect(form.contains("name=\"input.ref\"") && form.contains("name=\"reason\""))
        h.snapshots = true

        // A ref that is not a tag: the form again, the detail under the input, 422, nothing started.
        let bad = try post(h, carol, "/ui/plans/release/runs", "input.ref=main&reason=ship&key=k1")
        try expectRefusedPage(bad, 422, "invalid-field", actor: "carol", subject: "plan/release")
        #expect(bad.body.contains("id=\"input-ref-error\" role=\"alert\""))
        #expect(bad.body.contains("aria-invalid=\"true\"") && bad.body.contains("value=\"main\""))
        // Without the session's CSRF token, or from another site: refused before anything.
        let forged = try post(h, carol, "/ui/plans/release/runs", "input.ref=v1.2.0", csrf: "")
        try expectRefusedPage(forged, 403, "csrf-refused", actor: "carol", subject: "plan/release")
        // A plan whose environments she may not deploy to (nor read): the problem alone.
        let prod = try post(h, carol, "/ui/plans/prod/runs", "")
        try expectRefusedPage(prod, 403, "forbidden", actor: "carol", subject: "plan/prod")
        #expect(!prod.body.contains("straight to prod"))

        let started = try post(h, carol, "/ui/plans/release/runs", "input.ref=v1.2.0&reason=ship&key=k2")
        let run = try run(started)
        let start = try #require(
            started.after["audit"].records.first { $0["action"] == .text("plan_run.start") })
        #expect(start["actor"] == .text("carol") && start["subject"] == .text("plan_run/\(run)"))
        #expect(start["detail"]?.text?.contains("\"via\":\"console\"") == true)
        let stored = try PlanRuns.require(h.store.db, id: run)
        #expect(stored.inputs == ["ref": "v1.2.0"] && stored.reason == "ship")
        #expect(stored.steps.map(\.status) == [.running, .pending])
        // The same form posted again (the same key): the same run, nothing new.
        let again = try post(h, carol, "/ui/plans/release/runs", "input.ref=v1.2.0&reason=ship&key=k2")
        #expect(try self.run(again) == run)
        again.expectUnchanged()
        let shown = try get(h, carol, "/ui/runs/\(run)?done=started").body
        #expect(shown.contains("You started this run."))
        let odd = try get(h, carol, "/ui/runs/\(run)?done=step-retried&step=%3Cb%3Ewin%20now").body
        #expect(odd.contains("You retried the step.") && !odd.contains("win now"), "a notice names no made-up step")
    }

    @Test func theRunPageDrawsTheStepsAndVotesRetriesAndCancelsAsTheAPIDoes() throws {
        let h = try Self.harness()
        let carol = try signIn(h, "carol")
        let alice = try signIn(h, "alice")
        let bob = try signIn(h, "bob")
        let run = try run(try post(h, carol, "/ui/plans/release/runs", "input.ref=v1.2.0&reason=ship"))
        let path = "/ui/runs/\(run)"

        let page = try get(h, carol, path)
        #expect(page.status == 200 && page.header("Cache-Control") == "no-store")
        let body = page.body
        #expect(
            body.contains("<svg class=\"graph\" role=\"img\" aria-label=\"Step graph: approve running, stage pending\"")
        )
        #expect(body.contains("<path class=\"edge\" d=\"M154 26 C171 26 171 26 188 26\""), "approve → stage")
        #expect(body.contains("<g class=\"node g-running\"><title>approve: running</title>"))
        #expect(body.contains("id=\"step-stage\" data-step=\"stage\" data-status=\"pending\""))
        #expect(body.contains("0 of 2 steps ended (0 %)") && body.contains("id=\"run-estimate\""))
        #expect(body.contains("<dd id=\"run-current\"><a href=\"#step-approve\"><code>approve</code></a></dd>"))
        #expect(body.contains("You may not vote: who started the run cannot approve its steps"))
        #expect(body.contains("action=\"/ui/runs/\(run)/cancel\""), "she may cancel her run")
        let etag = try #require(page.header("ETag"))
        #expect(try get(h, carol, path, headers: ["If-None-Match": etag]).status == 304)

        // Her vote on her own run: the page again with the engine's refusal, 403, nothing else changed.
        h.snapshots = true
        let own = try post(h, carol, "\(path)/steps/approve/vote", "decision=approve")
        try expectRefusedPage(own, 403, "policy-denied", actor: "carol", subject: "plan_run/\(run)")
        let maybe = try post(h, alice, "\(path)/steps/approve/vote", "decision=maybe")
        try expectRefusedPage(maybe, 422, "invalid-field", actor: "alice", subject: "plan_run/\(run)")
        let forged = try post(h, alice, "\(path)/steps/approve/vote", "decision=approve", csrf: carol.csrf)
        try expectRefusedPage(forged, 403, "csrf-refused", actor: "alice", subject: "plan_run/\(run)")
        let zed = try signIn(h, "zed")
        let hidden = try post(h, zed, "\(path)/steps/approve/vote", "decision=approve")
        try expectRefusedPage(hidden, 404, "not-found", actor: "zed", subject: "plan_run/\(run)")

        let first = try post(h, alice, "\(path)/steps/approve/vote", "decision=approve&comment=lgtm")
        #expect(first.status == 303 && first.header("Location") == "\(path)?done=step-approved&step=approve")
        let vote = try #require(first.after["audit"].records.last)
        #expect(
            vote["action"] == .text("plan_step.vote") && vote["detail"]?.text?.contains("\"via\":\"console\"") == true)
        let hers = try get(h, alice, path).body
        #expect(hers.contains("You may not vote: alice has already voted") || hers.contains("you already voted"))
        #expect(hers.contains("1 of 2 approvals: alice"))
        #expect(try get(h, carol, path, headers: ["If-None-Match": etag]).status == 200, "the vote changed it")
        let second = try post(h, bob, "\(path)/steps/approve/vote", "decision=approve")
        #expect(second.status == 303 && second.outbox.count == 1, "the deploy step's dispatch")
        let job = try #require(try PlanRuns.require(h.store.db, id: run).steps[1].jobID)
        let running = try get(h, carol, path).body
        #expect(running.contains("<dt>Job</dt><dd><a href=\"/ui/jobs/\(job)\">job \(job)</a></dd>"))
        #expect(running.contains("1 of 2 steps ended (50 %)"))
        #expect(running.contains("You may not retry") == false && !running.contains("/retry\""))

        // The deploy fails: the run pauses, and she may retry the step (not the approval).
        try h.store.db.immediate { tx in
            try StateMachine.report(tx, job: job, state: .running, actor: "runner", now: h.now)
            try StateMachine.report(tx, job: job, state: .failed, actor: "runner", now: h.now)
        }
        let paused = try get(h, carol, path).body
        #expect(paused.contains("id=\"run-status\"><span class=\"state s-paused\">paused</span>"))
        #expect(paused.contains("data-step=\"stage\" data-status=\"failed\""))
        #expect(paused.contains("action=\"/ui/runs/\(run)/steps/stage/retry\""))
        #expect(paused.contains("none while paused"))
        let zedRetry = try post(h, zed, "\(path)/steps/stage/retry", "")
        try expectRefusedPage(zedRetry, 404, "not-found", actor: "zed", subject: "plan_run/\(run)")
        let wrong = try post(h, carol, "\(path)/steps/approve/retry", "")
        try expectRefusedPage(wrong, 409, "conflict", actor: "carol", subject: "plan_run/\(run)")
        let retried = try post(h, carol, "\(path)/steps/stage/retry", "")
        #expect(retried.status == 303 && retried.header("Location") == "\(path)?done=step-retried&step=stage")
        #expect(retried.after["audit"].records.contains { $0["action"] == .text("plan_step.retry_requested") })
        let after = try PlanRuns.require(h.store.db, id: run)
        #expect(after.status == .running && after.steps[1].status == .running && after.steps[1].attempts == 2)
        #expect(after.steps[0].status == .succeeded, "the approval is not asked again")

        // Cancel: through PlanEngine.cancel; then the run has ended and says so.
        let cancelled = try post(h, carol, "\(path)/cancel", "reason=enough")
        #expect(cancelled.status == 303 && cancelled.header("Location") == "\(path)?done=run-cancelled")
        let end = try #require(cancelled.after["audit"].records.first { $0["action"] == .text("plan_run.cancelled") })
        #expect(end["detail"]?.text?.contains("\"via\":\"console\"") == true)
        let over = try get(h, carol, "\(path)?done=run-cancelled").body
        #expect(over.contains("You cancelled this run.") && over.contains("You may not cancel run: the run has ended"))
        let twice = try post(h, carol, "\(path)/cancel", "")
        try expectRefusedPage(twice, 409, "conflict", actor: "carol", subject: "plan_run/\(run)")
    }

    @Test func depthsFollowTheDependencies() {
        let plan = PlanEngineTests.plan([
            PlanEngineTests.deploy("a", "shop", "staging"), PlanEngineTests.deploy("b", "api", "staging"),
            PlanEngineTests.deploy("c", "shop", "prod", after: ["a", "b"]),
            PlanEngineTests.deploy("d", "shop", "staging", after: ["a"]),
            PlanEngineTests.deploy("e", "shop", "prod", after: ["c", "d"]),
        ])
        #expect(plan.depths == [0, 0, 1, 1, 2])
    }
}
