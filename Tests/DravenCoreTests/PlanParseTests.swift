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
                    retry: .init(maxAttempts: 3, backoff: .exponential, initial: 30, max: 600, on: [.timedOut, .dispatchFailed]),
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
        #expect(plan.targets.map { "\($0.project)/\($0.environment) \($0.pointer)" } == [
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
                + #""retry":{"max_attempts":2,"backoff":"exponential","initial":"30s","max":"10m","on":["check_failed"]},"#
                + #""http":{"url_secret":"s","expect_status":200},"every":"30s","for":"0s"}],"#
                + #""on_failure":"fail","triggers":[]}"#)
        #expect(try Plan.parse(small.json) == small)
        // The digest ignores the version: the same plan whatever version the document says.
        var other = small
        other.version = 7
        #expect(other.digest == small.digest && other.json != small.json)
    }

    /// Each invalid document with the pointer it must name and (a part of) why.
    static let invalid: [(String, String, String)] = [
        (#"{"id": "p", "steps": [], "extra": 1}"#, "/extra", "is not a field of a plan"),
        (#"{"steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#, "/id", "is required"),
        (#"{"id": "P!", "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#, "/id", "a plan id is"),
        (#"{"id": "p", "version": 0, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#, "/version", "positive"),
        (#"{"id": "p", "version": "3", "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#, "/version", "integer"),
        (#"{"id": "p"}"#, "/steps", "is required"),
        (#"{"id": "p", "steps": []}"#, "/steps", "at least one step"),
        (#"{"id": "p", "steps": {}}"#, "/steps", "must be an array"),
        (#"{"id": "p", "steps": [3]}"#, "/steps/0", "must be an object"),
        (#"{"id": "p", "description": 5, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/description", "must be a string"),
        (#"{"id": "p", "on_failure": "retry", "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/on_failure", "fail, pause, compensate"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "colour": "red"}]}"#,
         "/steps/0/colour", "is not a field of a step"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "project": "shop"}]}"#,
         "/steps/0/project", "is not a field of a wait step"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "retry": {}}]}"#,
         "/steps/0/retry", "is not a field of a wait step"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "launch"}]}"#, "/steps/0/type", "must be one of deploy"),
        (#"{"id": "p", "steps": [{"id": "a"}]}"#, "/steps/0/type", "is required"),
        (#"{"id": "p", "steps": [{"id": "A b", "type": "wait", "duration": "1m"}]}"#, "/steps/0/id", "a step id is"),
        (#"{"id": "p", "steps": [{"id": "a.b", "type": "wait", "duration": "1m"}]}"#, "/steps/0/id", "a step id is"),
        (#"{"id": "p", "steps": [{"type": "wait", "duration": "1m"}]}"#, "/steps/0/id", "is required"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/steps/1/id", "repeats the step id a"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "depends_on": ["b"]}]}"#,
         "/steps/0/depends_on/0", "names no step of the plan (b)"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "depends_on": ["a"]}]}"#,
         "/steps/0/depends_on/0", "cannot depend on itself"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "depends_on": [1]}]}"#,
         "/steps/0/depends_on/0", "must be a step id"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "wait", "duration": "1m", "depends_on": ["a", "a"]}]}"#,
         "/steps/1/depends_on/1", "repeats a"),
        (#"""
         {"id": "p", "steps": [
           {"id": "stage", "type": "wait", "duration": "1m", "depends_on": ["prod"]},
           {"id": "prod", "type": "wait", "duration": "1m", "depends_on": ["stage"]}]}
         """#, "/steps/1/depends_on/0", "makes a cycle: stage → prod → stage"),
        (#"""
         {"id": "p", "steps": [
           {"id": "x", "type": "wait", "duration": "1m"},
           {"id": "a", "type": "wait", "duration": "1m", "depends_on": ["x", "c"]},
           {"id": "b", "type": "wait", "duration": "1m", "depends_on": ["a"]},
           {"id": "c", "type": "wait", "duration": "1m", "depends_on": ["b"]}]}
         """#, "/steps/2/depends_on/0", "makes a cycle: a → c → b → a"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "30"}]}"#, "/steps/0/duration", "duration"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": 30}]}"#,
         "/steps/0/duration", "a bare number has no unit"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "30m1h"}]}"#, "/steps/0/duration", "duration"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "0s"}]}"#, "/steps/0/duration", "duration"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "31d"}]}"#, "/steps/0/duration", "duration"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "check", "http": {"url_secret": "s"}, "every": "5x"}]}"#,
         "/steps/1/every", "duration"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "check", "http": {"url_secret": "s", "url": "x"}}]}"#,
         "/steps/0/http/url", "is not a field of a check's http"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "check", "http": {"url_secret": "s", "expect_status": 99}}]}"#,
         "/steps/0/http/expect_status", "100 to 599"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "check"}]}"#, "/steps/0/http", "is required"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo"}]}"#,
         "/steps/0/ref", "is required"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "compensate": "undo"}]}"#,
         "/steps/0/compensate", "must be one of rollback"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "diagnostic", "project": "shop", "environment": "demo", "compensate": "rollback"}]}"#,
         "/steps/0/compensate", "a diagnostic step cannot be compensated"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 3, "on": ["flaky"]}}]}"#,
         "/steps/0/retry/on/0", "is not a cause"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 3, "on": ["check_failed"]}}]}"#,
         "/steps/0/retry/on/0", "a deploy step cannot fail with check_failed"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 1, "on": ["failed"]}}]}"#,
         "/steps/0/retry/max_attempts", "from 2 to 20"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 2}}]}"#,
         "/steps/0/retry/on", "is required"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 2, "on": ["failed"], "initial": "10m", "max": "1m"}}]}"#,
         "/steps/0/retry/max", "must not be shorter than initial"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop", "retry": {"max_attempts": 2, "on": ["failed"], "jitter": true}}]}"#,
         "/steps/0/retry/jitter", "is not a field of a retry"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "condition": "steps.a.result =="}]}"#,
         "/steps/0/condition", "does not parse: the condition ends early"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "wait", "duration": "1m", "depends_on": ["a"], "condition": "steps.zz.result == 'succeeded'"}]}"#,
         "/steps/1/condition", "reads steps.zz: no such step"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "wait", "duration": "1m", "condition": "steps.a.result == 'succeeded'"}]}"#,
         "/steps/1/condition", "reads steps.a, which is not a dependency of b"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "condition": "inputs.nope == 'x'"}]}"#,
         "/steps/0/condition", "reads inputs.nope: no such input"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m", "condition": "steps.a.status == 'x'"}]}"#,
         "/steps/0/condition", "steps.ID.result"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "notify", "project": "shop", "message": "ref ${inputs.ref"}]}"#,
         "/steps/0/message", "does not parse: a ${ is not closed"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "notify", "project": "shop", "message": "costs $5"}]}"#,
         "/steps/0/message", "write $$ for a '$'"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "notify", "project": "shop", "message": "${inputs.ref}"}]}"#,
         "/steps/0/message", "reads inputs.ref: no such input"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "notify", "project": "shop", "message": "${steps.a.outputs.url}"}]}"#,
         "/steps/1/message", "not a dependency of b"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shop", "environment": "demo", "ref": "${env.HOME}"}]}"#,
         "/steps/0/ref", "a path starts with inputs. or steps."),
        (#"{"id": "p", "inputs": {"ref": {"type": "sha"}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/ref/type", "must be one of tag, branch, string"),
        (#"{"id": "p", "inputs": {"ref": {}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/ref/type", "is required"),
        (#"{"id": "p", "inputs": {"Ref": {"type": "tag"}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/Ref", "an input name is"),
        (#"{"id": "p", "inputs": {"a/b": {"type": "tag"}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/a~1b", "an input name is"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag", "pattern": "v*", "default": "main"}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/ref/default", "does not match the input's pattern v*"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag", "pattern": 5}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/ref/pattern", "must be a string"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag", "required": true}}, "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs/ref/required", "is not a field of an input"),
        (#"{"id": "p", "inputs": [], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/inputs", "must be an object"),
        (#"{"id": "p", "triggers": [{"on": "push", "project": "shop", "tag": "v*"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/on", "declare one"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag"}}, "triggers": [{"on": "push", "project": "shop", "tag": "v*", "input": "sha"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/input", "names no input of the plan"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag"}}, "triggers": [{"on": "push", "project": "shop", "branch": "main"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/branch", "first input ref is a tag"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag"}}, "triggers": [{"on": "pull", "project": "shop", "tag": "v*"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/on", "must be one of push"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag"}}, "triggers": [{"on": "push", "project": "shop", "tag": "v*", "branch": "x"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/branch", "either tag or branch"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "approval", "approvals": 0}]}"#,
         "/steps/0/approvals", "from 1 to 10"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "approval", "approver_groups": ["leads", "leads"]}]}"#,
         "/steps/0/approver_groups/1", "repeats leads"),
    ]

    @Test(arguments: invalid)
    func refusesNamingTheKey(_ text: String, _ pointer: String, _ reason: String) throws {
        let error = #expect(throws: DravenError.self) { try Plan.parse(try JSON.parse(text)) }
        guard case .invalidField(let p, let r) = error else {
            Issue.record("expected invalidField, got \(String(describing: error))")
            return
        }
        #expect(p == pointer, "\(r)")
        #expect(r.contains(reason), "\(p): \(r)")
    }

    /// What the store must hold: projects, environments (a `notFound`-style refusal that still
    /// names the key, as a 422), groups, triggers' projects.
    static let unknownInStore: [(String, String, String)] = [
        (#"{"id": "p", "steps": [{"id": "a", "type": "deploy", "project": "shoe", "environment": "demo", "ref": "x"}]}"#,
         "/steps/0/project", "names no project (shoe)"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "wait", "duration": "1m"}, {"id": "b", "type": "diagnostic", "project": "shop", "environment": "qa"}]}"#,
         "/steps/1/environment", "names no environment of project shop (qa)"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "notify", "project": "nope", "message": "hi"}]}"#,
         "/steps/0/project", "names no project (nope)"),
        (#"{"id": "p", "steps": [{"id": "a", "type": "approval", "approver_groups": ["leads", "owners"]}]}"#,
         "/steps/0/approver_groups/1", "names no group (owners)"),
        (#"{"id": "p", "inputs": {"ref": {"type": "tag"}}, "triggers": [{"on": "push", "project": "api", "tag": "v*"}], "steps": [{"id": "a", "type": "wait", "duration": "1m"}]}"#,
         "/triggers/0/project", "names no project (api)"),
    ]

    @Test func refusesWhatTheStoreDoesNotHold() throws {
        let store = try TestStore()
        #expect(try Plan.parse(try JSON.parse(Self.release), store: store.db).steps.count == 5)
        for (text, pointer, reason) in Self.unknownInStore {
            let document = try JSON.parse(text)
            _ = try Plan.parse(document)  // valid without the store
            let error = #expect(throws: DravenError.self) { try Plan.parse(document, store: store.db) }
            #expect(error == .invalidField(pointer: pointer, reason: reason))
        }
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
