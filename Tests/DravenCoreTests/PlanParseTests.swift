import Testing

@testable import DravenCore

/// `Plan.parse`: the issue's example reads as the model says; every invalid document is refused
/// with the pointer of the key at fault and why; the canonical document reads back as the same plan.
@Suite struct PlanParseTests {
    static let release = #"""
        {"id": "release-shop", "version": 3, "description": "stage, soak, approve, prod",
         "inputs": {"ref": {"type": "tag", "pattern": "v*"}},
         "steps": [
           {"id": "stage", "type": "deploy", "project": "shop", "environment": "staging", "ref": "${inputs.ref}",
            "timeout": "30m", "retry": {"max_attempts": 3, "backoff": "exponential", "initial": "30s", "max": "10m",
            "on": ["timed_out", "dispatch_failed"]}, "compensate": "rollback"},
           {"id": "soak", "type": "wait", "duration": "10m", "depends_on": ["stage"]},
           {"id": "health", "type": "check", "depends_on": ["stage"],
            "http": {"url_secret": "shop-staging-health", "expect_status": 200}, "every": "30s", "for": "5m"},
           {"id": "approve", "type": "approval", "approvals": 2, "approver_groups": ["leads"],
            "depends_on": ["soak", "health"]},
           {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod", "ref": "${inputs.ref}",
            "depends_on": ["approve"], "condition": "steps.health.result == 'succeeded'", "compensate": "rollback"}
         ],
         "on_failure": "compensate"}
        """#

    @Test func readsTheIssuesExample() throws {
        let plan = try Plan.parse(try JSON.parse(Self.release))
        let ref = try PlanTemplate.parse("${inputs.ref}")
        #expect(plan.id == "release-shop" && plan.version == 3 && plan.onFailure == .compensate)
        #expect(plan.inputs == [.init(name: "ref", type: .tag, pattern: "v*")])
        #expect(plan.steps.map(\.id) == ["stage", "soak", "health", "approve", "prod"])
        #expect(
            plan.steps[0]
                == .init(
                    id: "stage", action: .deploy(project: "shop", environment: "staging", ref: ref, reason: nil),
                    timeout: 1800,
                    retry: .init(
                        maxAttempts: 3, backoff: .exponential, initial: 30, max: 600, on: [.timedOut, .dispatchFailed]),
                    compensate: .rollback))
        #expect(plan.steps[1].action == .wait(seconds: 600))
        #expect(
            plan.steps[2].action
                == .check(.init(urlSecret: "shop-staging-health", expectStatus: 200, every: 30, forSeconds: 300)))
        #expect(plan.steps[3].action == .approval(approvals: 2, groups: ["leads"]))
        #expect(
            plan.steps[4].condition
                == .compare(.equal, .path(["steps", "health", "result"]), .literal(.string("succeeded"))))
        #expect(plan.ancestors(of: "prod") == ["approve", "soak", "health", "stage"])
        #expect(
            plan.targets.map { "\($0.project)/\($0.environment) \($0.pointer)" } == [
                "shop/staging /steps/0", "shop/prod /steps/4",
            ])
    }

    /// `Plan.parse(plan.json) == plan`; the canonical document fills in every default, writes
    /// durations canonically, and is a fixed point.
    @Test func canonicalDocumentRoundTrips() throws {
        let plan = try Plan.parse(try JSON.parse(Self.release))
        let canonical = plan.json
        #expect(try Plan.parse(canonical) == plan)
        #expect(try Plan.parse(canonical).json.serialized() == canonical.serialized())
        let small = try Plan.parse(
            try JSON.parse(
                #"""
                {"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "90s"},
                  {"id": "b", "type": "check", "http": {"url_secret": "s"}, "depends_on": ["a"],
                   "condition": "not (steps.a.result=='succeeded' or inputs.x)  and steps.a.attempts>=1",
                   "retry": {"max_attempts": 2, "on": ["check_failed"]}}],
                 "inputs": {"x": {"type": "string", "default": "yes"}}}
                """#))
        #expect(
            small.json.serialized()
                == #"{"id":"p","description":"","inputs":{"x":{"type":"string","default":"yes"}},"#
                + #""steps":[{"id":"a","type":"wait","depends_on":[],"duration":"1m30s"},"#
                + #"{"id":"b","type":"check","depends_on":["a"],"#
                + #""condition":"not (steps.a.result == 'succeeded' or inputs.x) and steps.a.attempts >= 1","#
                + #""retry":{"max_attempts":2,"backoff":"exponential","initial":"30s","max":"10m","#
                + #""on":["check_failed"]},"#
                + #""http":{"url_secret":"s","expect_status":200},"every":"30s","for":"0s"}],"#
                + #""on_failure":"fail","triggers":[]}"#)
        #expect(try Plan.parse(small.json) == small)
        // The digest ignores the version: the same plan whatever version the document says.
        var other = small
        other.version = 7
        #expect(other.digest == small.digest && other.json != small.json)
    }

    /// Each invalid document with the pointer it must name and (a part of) why: Tests/plans/invalid.json,
    /// which the end-to-end test sends through nginx too. `store`: valid but for what the store holds.
    struct Invalid: CustomTestStringConvertible, Sendable {
        var pointer: String
        var reason: String
        var store: Bool
        var plan: JSON
        var testDescription: String { "\(pointer): \(reason)" }
    }

    static func invalid() throws -> [Invalid] {
        try (Fixtures.json("../Tests/plans/invalid.json").arrayValue ?? []).map {
            Invalid(
                pointer: $0["pointer"]?.stringValue ?? "", reason: $0["reason"]?.stringValue ?? "",
                store: $0["store"] == true, plan: $0["plan"] ?? .null)
        }
    }

    @Test(arguments: try invalid())
    func refusesNamingTheKey(_ c: Invalid) throws {
        let store = c.store ? try TestStore() : nil
        if c.store { _ = try Plan.parse(c.plan) }  // valid without the store
        let error = #expect(throws: DravenError.self) { try Plan.parse(c.plan, store: store?.db) }
        guard case .invalidField(let p, let r) = error else {
            Issue.record("expected invalidField, got \(String(describing: error))")
            return
        }
        #expect(p == c.pointer, "\(r)")
        #expect(r.contains(c.reason), "\(p): \(r)")
    }

    @Test func theStoreIsAskedOnlyWhenGiven() throws {
        let store = try TestStore()
        #expect(try Plan.parse(try JSON.parse(Self.release), store: store.db).steps.count == 5)
        #expect(try Self.invalid().filter(\.store).count == 6)
    }

    @Test func durations() {
        for (text, seconds) in [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172_800), ("1d2h3m4s", 93784)] {
            #expect(PlanDuration.parse(text) == Int64(seconds), "\(text)")
            #expect(PlanDuration.format(Int64(seconds)) == text)
        }
        #expect(PlanDuration.parse("0s") == 0 && PlanDuration.format(0) == "0s")
        for bad in ["", "30", "s", "1h1h", "1m1h", "1.5h", "-1m", "1 m", "1w", "99999999s", "31d", "1H"] {
            #expect(PlanDuration.parse(bad) == nil, "\(bad)")
        }
    }
}

/// The README's two complete examples (infra/examples/plans/) are valid plans for a store that has
/// what they name, and their canonical documents read back as the same plans.
@Suite struct PlanExampleTests {
    static let config = """
        {
          "people": {"alice": {}, "bob": {}, "release-bot": {}},
          "groups": {"leads": ["alice", "bob"]},
          "projects": {
            "shop": {"integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                                     "pipelines": {"*": "deploy.yml"}},
                     "environments": {"staging": {"refs": ["tag:v*"]}, "prod": {"refs": ["tag:v*"]}}},
            "db-migrations": {"integration": {"provider": "github", "repo": "acme/db", "method": "workflow_dispatch",
                                              "pipelines": {"*": "deploy.yml"}},
                              "environments": {"prod": {"refs": ["branch:release/*"]}}},
            "api": {"integration": {"provider": "github", "repo": "acme/api", "method": "workflow_dispatch",
                                    "pipelines": {"*": "deploy.yml"}},
                    "environments": {"prod": {"refs": ["branch:release/*"]}}},
            "worker": {"integration": {"provider": "github", "repo": "acme/worker", "method": "workflow_dispatch",
                                       "pipelines": {"*": "deploy.yml"}},
                       "environments": {"prod": {"refs": ["branch:release/*"]}}},
            "web": {"integration": {"provider": "github", "repo": "acme/web", "method": "workflow_dispatch",
                                    "pipelines": {"*": "deploy.yml"}},
                    "environments": {"prod": {"refs": ["branch:release/*"]}}}
          }
        }
        """

    @Test(arguments: ["promote-shop", "three-services"])
    func theREADMEsExamplesAreValidPlans(_ name: String) throws {
        let store = try TestStore(config: Self.config)
        let plan = try Plan.parse(try Fixtures.json("../infra/examples/plans/\(name).json"), store: store.db)
        #expect(try Plan.parse(plan.json) == plan)
        #expect(plan.steps.count >= 5)
    }
}
