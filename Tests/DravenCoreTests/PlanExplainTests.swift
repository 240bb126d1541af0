import Testing

@testable import DravenCore
@testable import DravenFunctions

/// `POST /api/v1/plans/{id}/explain` (`PlanExplain`): what a run would do today, step by step,
/// with nothing written at all (not even an audit record); its refusals change nothing but theirs.
@Suite struct PlanExplainTests {
    /// stage (shop/staging) → approve (2 leads) → prod (shop/prod); api (api/staging, lock `reject`)
    /// beside stage; notify only when the ref is not a pre-release; `after-api` needs api.
    static let plan = Plan(
        id: "release", version: 1, inputs: [.init(name: "ref", type: .branch)],
        steps: [
            PlanEngineTests.deploy("stage", "shop", "staging"),
            PlanEngineTests.deploy("api", "api", "staging"),
            Plan.Step(id: "after-api", action: .wait(seconds: 60), dependsOn: ["api"]),
            Plan.Step(id: "approve", action: .approval(approvals: 2, groups: ["leads"]), dependsOn: ["stage"]),
            PlanEngineTests.deploy("prod", "shop", "prod", after: ["approve"]),
            Plan.Step(
                id: "tell", action: .notify(project: "shop", message: PlanEngineTests.template("shipped")),
                dependsOn: ["stage"],
                condition: .compare(.equal, .path(["inputs", "ref"]), .literal(.string("release")))),
            Plan.Step(id: "soak", action: .wait(seconds: 600), dependsOn: ["tell"]),
        ])

    static func harness() throws -> Harness {
        let h = try Harness(config: PlanEngineTests.config, people: ["alice", "bob", "carol"])
        try h.store.db.immediate { tx in _ = try Plans.apply(tx, plan, by: "test", now: h.now) }
        return h
    }

    static func explain(_ h: Harness, _ inputs: JSON = ["ref": "main"], by who: String = "alice") throws -> Exchange {
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/release/explain", json: ["inputs": inputs], token: who)
    }

    /// Expects a 200 whose every table, the audit trail too, is as it was.
    static func expectNothingWritten(_ e: Exchange, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(e.status == 200, "\(e.body)", sourceLocation: sourceLocation)
        #expect(e.after.changes(since: e.before).isEmpty, sourceLocation: sourceLocation)
        #expect(e.outbox.isEmpty, sourceLocation: sourceLocation)
    }

    static func step(
        _ id: String, _ type: String, _ would: String, _ why: String, after: String? = nil,
        environment: String? = nil, ref: String? = nil
    ) -> JSON {
        var o: JSONObject = ["id": .string(id), "type": .string(type), "would": .string(would), "why": .string(why)]
        if let after { o["after"] = .string(after) }
        if let environment { o["environment"] = .string(environment) }
        if let ref { o["ref"] = .string(ref) }
        return .object(o)
    }

    @Test func aPolicyRefusalAndTheStepsAfterItAndASkip() throws {
        let h = try Self.harness()
        let e = try Self.explain(h)
        Self.expectNothingWritten(e)
        let stops = "which would stop the run"
        #expect(
            e.json
                == [
                    "plan": "release", "version": 1, "inputs": ["ref": "main"], "would": "start",
                    "stops_at": ["approve"],
                    "steps": [
                        Self.step(
                            "stage", "deploy", "start", "its job would be dispatched (refs/heads/main)",
                            environment: "shop/staging", ref: "main"),
                        Self.step(
                            "api", "deploy", "start", "its job would be dispatched (refs/heads/main)",
                            environment: "api/staging", ref: "main"),
                        Self.step("after-api", "wait", "start", "it ends 60 s after it starts"),
                        Self.step(
                            "approve", "approval", "wait",
                            "it waits for 2 approval(s) from members of leads, not from who starts the run"),
                        Self.step(
                            "prod", "deploy", "after", "after approve, \(stops)", after: "approve",
                            environment: "shop/prod"),
                        Self.step(
                            "tell", "notify", "skip", "its condition would be false: inputs.ref == 'release'"),
                        Self.step("soak", "wait", "skip", "tell would be skipped"),
                    ],
                ], "\(e.body)")
    }

    @Test func aRefusedRefIsWhereTheRunStops() throws {
        let h = try Self.harness()
        let prod = Plan(
            id: "prod", version: 1, inputs: [.init(name: "ref", type: .branch)],
            steps: [
                PlanEngineTests.deploy("prod", "shop", "prod"),
                Plan.Step(id: "after", action: .wait(seconds: 5), dependsOn: ["prod"]),
            ])
        try h.store.db.immediate { tx in _ = try Plans.apply(tx, prod, by: "test", now: h.now) }
        let e = try h.call(
            PlanAPI.self, "POST", "/api/v1/plans/prod/explain", json: ["inputs": ["ref": "main"]], token: "alice")
        Self.expectNothingWritten(e)
        let steps = e.json?["steps"]?.arrayValue ?? []
        #expect(steps.first?["would"] == "refuse", "\(e.body)")
        #expect(steps.first?["why"] == "prod accepts only tag v*; branch main does not match", "\(e.body)")
        #expect(
            steps.last == Self.step("after", "wait", "after", "after prod, which would stop the run", after: "prod"))
        #expect(e.json?["stops_at"] == ["prod"])
    }

    @Test func aHeldLockQueuesOrRefusesByTheEnvironmentsPolicy() throws {
        let h = try Self.harness()
        let alice = Principal(personID: try h.store.personID("alice"), handle: "alice", tokenID: 0)
        var holders: [Int64] = []
        for (project, environment) in [("shop", "staging"), ("api", "staging")] {
            let input = DeployRequest(project: project, environment: environment, ref: "v0.9.0", refKind: "tag")
            holders.append(
                try h.store.db.immediate { tx in
                    try Deploys.create(
                        tx, try Deploys.check(tx.db, input, by: alice), by: alice, idempotencyKey: nil,
                        subject: "", now: h.now
                    ).id
                })
        }
        let e = try Self.explain(h)
        Self.expectNothingWritten(e)
        let steps = e.json?["steps"]?.arrayValue ?? []
        #expect(
            steps[0]
                == Self.step(
                    "stage", "deploy", "wait",
                    "its job would queue behind job \(holders[0]), which holds the lock of shop/staging",
                    environment: "shop/staging", ref: "main"))
        #expect(steps[1]["would"] == "refuse")
        #expect(
            steps[1]["why"] == .string(Problem(.environmentBusy(environment: "api/staging", heldBy: holders[1])).detail)
        )
        #expect(
            steps[2] == Self.step("after-api", "wait", "after", "after api, which would stop the run", after: "api"))
        #expect(
            steps[3]
                == Self.step("approve", "approval", "after", "after stage, which would stop the run", after: "stage"))
        #expect(e.json?["stops_at"] == ["stage", "api"])
    }

    /// A policy that needs approvals stops the run at its step; a ref made of an earlier step's
    /// outputs is not known yet: the step's grant and lock are, and the answer says so.
    @Test func approvalsThePolicyNeedsAndARefFromOutputs() throws {
        let w = try RouteWorld()
        let fromStage = PlanTemplate(
            parts: [.path(["steps", "stage", "outputs", "ref"])], source: "${steps.stage.outputs.ref}")
        let plan = Plan(
            id: "gated", version: 1, inputs: [.init(name: "ref", type: .branch)],
            steps: [
                PlanEngineTests.deploy("gate", "app", "gated"),
                PlanEngineTests.deploy("stage", "app", "live"),
                Plan.Step(
                    id: "again", action: .deploy(project: "app", environment: "live", ref: fromStage, reason: nil),
                    dependsOn: ["stage"]),
            ])
        try w.h.store.db.immediate { tx in _ = try Plans.apply(tx, plan, by: "test", now: w.h.now) }
        let e = try w.h.call(
            PlanAPI.self, "POST", "/api/v1/plans/gated/explain", json: ["inputs": ["ref": "main"]], token: "alice")
        Self.expectNothingWritten(e)
        #expect(
            e.json?["steps"]
                == [
                    Self.step(
                        "gate", "deploy", "wait", "its job would wait for 2 approval(s)", environment: "app/gated",
                        ref: "main"),
                    Self.step(
                        "stage", "deploy", "start", "its job would be dispatched (refs/heads/main)",
                        environment: "app/live", ref: "main"),
                    Self.step(
                        "again", "deploy", "start",
                        "its job would be dispatched (its ref, from stage's outputs, is checked when it starts)",
                        environment: "app/live"),
                ], "\(e.body)")
    }

    @Test func withoutTheGrantsToStartTheRunIsRefusedAsAWhole() throws {
        let h = try Self.harness()
        let e = try Self.explain(h, by: "carol")
        Self.expectNothingWritten(e)
        #expect(e.json?["would"] == "refuse")
        #expect(
            e.json?["why"]
                == .string(Problem(.forbidden(action: "deploy", project: "shop", environment: "prod")).detail))
        #expect(e.json?["steps"]?.arrayValue?.first?["would"] == "start")
    }

    @Test func refusalsChangeNothingButTheirRecord() throws {
        let h = try Self.harness()
        try Self.explain(h, ["ref": "main", "extra": "x"])
            .expectRefused(422, "invalid-field", .audited(actor: "alice", subject: "plan/release"))
        try Self.explain(h, ["ref": 3])
            .expectRefused(422, "invalid-field", .audited(actor: "alice", subject: "plan/release"))
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/nope/explain", json: [:], token: "alice")
            .expectRefused(404, "not-found", .audited(actor: "alice", subject: "plan/nope"))
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/release/explain", json: ["inputs": [], "x": 1], token: "alice")
            .expectRefused(422, "invalid-field", .audited(actor: "alice", subject: "plan/release"))
        try h.call(PlanAPI.self, "POST", "/api/v1/plans/release/explain", json: [:])
            .expectRefused(401, "unauthenticated", .counted)
    }
}
