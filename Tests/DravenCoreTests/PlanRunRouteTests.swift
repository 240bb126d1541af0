import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The runs' routes in the `plans` function, in process: answers, and refusals that change
/// nothing but their audit record (full store snapshots).
@Suite struct PlanRunRouteTests {
    static let plan = Plan(
        id: "release", version: 1, inputs: [.init(name: "ref", type: .tag, pattern: "v*")],
        steps: [
            Plan.Step(id: "approve", action: .approval(approvals: 2, groups: ["leads"])),
            PlanEngineTests.deploy("stage", "shop", "staging", after: ["approve"]),
        ], onFailure: .pause)

    static func harness() throws -> Harness {
        let h = try Harness(config: PlanEngineTests.config, people: ["alice", "bob", "carol", "dana", "erin"])
        try h.store.db.immediate { tx in _ = try Plans.apply(tx, plan, by: "test", now: h.now) }
        return h
    }

    static func start(_ h: Harness, by who: String = "carol", inputs: JSON = ["ref": "v1.2.0"]) throws -> Exchange {
        try h.call(
            PlanAPI.self, "POST", "/api/v1/plans/release/runs", json: ["inputs": inputs, "reason": "ship it"],
            token: who, headers: ["Idempotency-Key": "k-\(who)"])
    }

    @Test func startReadVoteAndList() throws {
        let h = try Self.harness()
        let started = try Self.start(h)
        #expect(started.status == 201, "\(started.body)")
        let run = try #require(started.json?["run_id"]?.intValue)
        #expect(started.header("Location") == "/api/v1/runs/\(run)")
        #expect(started.json?["status"] == "running")
        #expect(started.json?["current_steps"] == ["approve"])
        #expect(started.json?["steps"]?["stage"]?["status"] == "pending")
        #expect(try Self.start(h).status == 200)

        let vote = { (who: String) in
            try h.call(
                PlanAPI.self, "POST", "/api/v1/runs/\(run)/steps/approve/approvals",
                json: ["decision": "approve"], token: who)
        }
        try vote("carol").expectRefused(403, "policy-denied", .audited(actor: "carol", subject: "plan_run/\(run)"))
        try vote("erin").expectRefused(403, "policy-denied", .audited(actor: "erin", subject: "plan_run/\(run)"))
        #expect(try vote("alice").json?["approvals"] == 1)
        try vote("alice").expectRefused(409, "conflict", .audited(actor: "alice", subject: "plan_run/\(run)"))
        let second = try vote("bob")
        #expect(second.status == 201)
        #expect(second.json?["step_status"] == "succeeded")
        #expect(second.outbox.count == 1, "the deploy step's dispatch, handed to the deliverer")

        let shown = try h.call(PlanAPI.self, "GET", "/api/v1/runs/\(run)", token: "carol")
        #expect(shown.json?["steps"]?["stage"]?["status"] == "running")
        #expect(shown.json?["progress"] == .double(0.5))
        #expect(shown.json?["steps"]?["approve"]?["votes"]?.arrayValue?.count == 2)
        let listed = try h.call(PlanAPI.self, "GET", "/api/v1/runs?status=running", token: "carol")
        #expect(listed.json?["runs"]?.arrayValue?.count == 1)
        let stuck = try h.call(PlanAPI.self, "GET", "/api/v1/runs?status=stuck", token: "carol")
        #expect(stuck.json?["runs"]?.arrayValue?.count == 0)
        h.store.now += 31 * 60
        let later = try h.call(PlanAPI.self, "GET", "/api/v1/runs?status=stuck", token: "carol")
        #expect(later.json?["runs"]?.arrayValue?.count == 1)
    }

    @Test func refusalsChangeNothingButTheirRecord() throws {
        let h = try Self.harness()
        try Self.start(h, inputs: ["ref": "main"])
            .expectRefused(422, "invalid-field", .audited(actor: "carol", subject: "plan/release"))
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/nope/runs", json: [:], token: "carol")
            .expectRefused(404, "not-found", .audited(actor: "carol", subject: "plan/nope"))
        let started = try Self.start(h)
        let run = try #require(started.json?["run_id"]?.intValue)
        try h.call(PlanAPI.self, "POST", "/api/v1/runs/\(run)/steps/stage/retry", json: [:], token: "carol")
            .expectRefused(409, "conflict", .audited(actor: "carol", subject: "plan_run/\(run)"))
        try h.call(PlanAPI.self, "GET", "/api/v1/runs/\(run + 1)", token: "carol")
            .expectRefused(404, "not-found", .audited(actor: "carol", subject: "plan_run/\(run + 1)"))
        try h.call(PlanAPI.self, "GET", "/api/v1/runs?status=bogus", token: "carol")
            .expectRefused(422, "invalid-field", .audited(actor: "carol", subject: ""))
        try h.call(PlanAPI.self, "GET", "/api/v1/runs/\(run)")
            .expectRefused(401, "unauthenticated", .counted)
    }

    @Test func aRunOfAPlanOnEnvironmentsTheCallerCannotReadIsNotFound() throws {
        let h = try Self.harness()
        let prod = Plan(
            id: "prod", version: 1, steps: [PlanEngineTests.deploy("p", "shop", "prod", ref: "refs/tags/v1")])
        try h.store.db.immediate { tx in _ = try Plans.apply(tx, prod, by: "test", now: h.now) }
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/prod/runs", json: [:], token: "carol")
            .expectRefused(403, "forbidden", .audited(actor: "carol", subject: "plan/prod"))
        let started = try h.call(PlanAPI.self, "POST", "/api/v1/plans/prod/runs", json: [:], token: "alice")
        let run = try #require(started.json?["run_id"]?.intValue)
        try h.call(PlanAPI.self, "GET", "/api/v1/runs/\(run)", token: "carol")
            .expectRefused(404, "not-found", .audited(actor: "carol", subject: "plan_run/\(run)"))
        try h.call(PlanAPI.self, "POST", "/api/v1/runs/\(run)/cancel", json: [:], token: "carol")
            .expectRefused(404, "not-found", .audited(actor: "carol", subject: "plan_run/\(run)"))
        let cancelled = try h.call(PlanAPI.self, "POST", "/api/v1/runs/\(run)/cancel", json: [:], token: "alice")
        #expect(cancelled.json?["status"] == "cancelled")
    }
}
