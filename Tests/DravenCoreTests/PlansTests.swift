import Testing

@testable import DravenCore
@testable import DravenFunctions

/// `Plans` (versions, the no-op re-apply, the version check) and the `plans` function in process:
/// answers, grants, and refusals that change nothing but their audit record.
@Suite struct PlansTests {
    static func document(version: Int? = nil, wait: String = "1m", env: String = "demo") -> String {
        let v = version.map { #""version": \#($0), "# } ?? ""
        return #"""
            {"id": "demo-twice", \#(v)"steps": [
              {"id": "one", "type": "deploy", "project": "shop", "environment": "\#(env)", "ref": "develop"},
              {"id": "pause", "type": "wait", "duration": "\#(wait)", "depends_on": ["one"]}]}
            """#
    }

    static func plan(_ text: String) throws -> Plan { try Plan.parse(try JSON.parse(text)) }

    @Test func applyKeepsAnUnchangedVersionAndNumbersChangedOnes() throws {
        let store = try TestStore()
        func apply(_ text: String) throws -> Plans.Applied {
            try store.db.immediate { tx in try Plans.apply(tx, try Self.plan(text), by: "alice", now: store.now) }
        }
        let first = try apply(Self.document())
        #expect(first.created && first.stored.version == 1 && first.stored.appliedBy == "alice")
        var expected = try Self.plan(Self.document())
        expected.version = 1
        #expect(try first.stored.plan() == expected)
        #expect(first.stored.digest == expected.digest)
        #expect(try store.count("audit", "action = 'plan.apply' AND subject = 'plan/demo-twice'") == 1)

        let before = try StoreSnapshot(store.db)
        #expect(try apply(Self.document()).created == false)
        #expect(try apply(Self.document(version: 1)).stored.version == 1)
        #expect(try apply(Self.document(version: 2)).created == false, "the next version, unchanged: a no-op")
        #expect(try StoreSnapshot(store.db) == before, "an unchanged document writes nothing")

        #expect(try apply(Self.document(wait: "2m")).stored.version == 2)
        #expect(try apply(Self.document(version: 2, wait: "3m")).stored.version == 3, "edited from version 2")
        #expect(try apply(Self.document(version: 4, wait: "4m")).stored.version == 4, "says it is the next one")
        for stale in [1, 3, 6] {
            let snapshot = try StoreSnapshot(store.db)
            let error = #expect(throws: DravenError.self) { try apply(Self.document(version: stale, wait: "9m")) }
            #expect(
                error
                    == .conflict(
                        "plan demo-twice is at version 4; the document says version \(stale) "
                            + "(send the version it was edited from, or leave version out)"))
            #expect(try StoreSnapshot(store.db) == snapshot)
        }
        let error = #expect(throws: DravenError.self) {
            try apply(#"{"id": "new", "version": 2, "steps": [{"id": "w", "type": "wait", "duration": "1s"}]}"#)
        }
        #expect(error?.isConflict == true)
        #expect(
            try apply(#"{"id": "new", "version": 1, "steps": [{"id": "w", "type": "wait", "duration": "1s"}]}"#)
                .stored.version == 1)

        #expect(try Plans.latest(store.db, id: "demo-twice")?.version == 4)
        #expect(try Plans.load(store.db, id: "demo-twice", version: 1)?.plan() == expected)
        #expect(try Plans.load(store.db, id: "demo-twice", version: 5) == nil)
        #expect(try Plans.list(store.db).map { "\($0.id) \($0.version)" } == ["demo-twice 4", "new 1"])
        #expect(try store.count("audit", "action = 'plan.apply'") == 5)
        #expect(try store.count("plans") == 5)
    }

    /// `[[plans]]` in a configuration: a file alone, or an inline plan checked as a document is.
    @Test func configurationPlans() throws {
        func problems(_ plans: String) -> [String] {
            do {
                _ = try Config.validate(try JSON.parse(#"{"plans": \#(plans)}"#), file: "c.json")
                return []
            } catch let error as ConfigError {
                return error.problems.map { "\($0.key): \($0.reason)" }
            } catch {
                return ["\(error)"]
            }
        }
        let config = try Config.validate(
            try JSON.parse(#"{"plans": [{"file": "p.json"}, \#(Self.document())]}"#), file: "c.json")
        #expect(config.plans.map(\.key) == ["plans[0]", "plans[1]"])
        #expect(config.plans[0].file == "p.json" && config.plans[0].document == nil)
        #expect(try config.plans[1].document.map { try Plan.parse($0) } == Self.plan(Self.document()))
        #expect(problems(#"{"file": "p.json"}"#) == ["plans: must be an array of tables ([[plans]])"])
        #expect(problems(#"[{"file": "p.json", "id": "x"}]"#) == ["plans[0].file: a file entry has only `file`"])
        #expect(
            problems(#"[{"file": ""}, 3]"#) == [
                "plans[0].file: must be a non-empty string", "plans[1]: must be a table",
            ])
        #expect(
            problems(#"[{"id": "x", "steps": [{"id": "a", "type": "wait", "duration": "1m", "depends_on": ["b"]}]}]"#)
                == ["plans[0]/steps/0/depends_on/0: names no step of the plan (b)"])
    }

    // MARK: - through the function

    static func harness() throws -> Harness {
        try Harness(config: TestStore.config, people: ["alice", "bob", "carol"])
    }

    @Test func appliesAnswersAndReads() throws {
        let h = try Self.harness()
        let created = try h.call(
            PlanAPI.self, "POST", "/api/v1/plans", json: try JSON.parse(Self.document()), token: "carol")
        #expect(created.status == 201, "\(created.body)")
        #expect(created.header("Location") == "/api/v1/plans/demo-twice?version=1")
        #expect(created.json?["version"] == 1 && created.json?["applied_by"] == "carol")
        var plan = try Self.plan(Self.document())
        plan.version = 1
        #expect(created.json?["document"] == plan.json)

        let again = try h.call(
            PlanAPI.self, "POST", "/api/v1/plans", json: try JSON.parse(Self.document()), token: "carol")
        #expect(again.status == 200 && again.json == created.json)
        again.expectUnchanged("an unchanged plan")

        let shown = try h.call(PlanAPI.self, "GET", "/api/v1/plans/demo-twice", token: "alice")
        #expect(shown.status == 200 && shown.json == created.json)
        shown.expectUnchanged()
        let two = try h.call(
            PlanAPI.self, "POST", "/api/v1/plans", json: try JSON.parse(Self.document(wait: "5m")), token: "carol")
        #expect(two.status == 201 && two.json?["version"] == 2)
        let old = try h.call(PlanAPI.self, "GET", "/api/v1/plans/demo-twice?version=1", token: "carol")
        #expect(old.json == created.json)
        let list = try h.call(PlanAPI.self, "GET", "/api/v1/plans", token: "carol")
        #expect(list.json?["plans"]?.arrayValue?.map { $0["version"] } == [2])
        #expect(list.json?["plans"]?.arrayValue?.first?["steps"] == 2)
    }

    @Test func refusalsChangeNothingButTheirRecord() throws {
        let h = try Self.harness()
        func post(_ text: String, _ who: String) throws -> Exchange {
            try h.call(PlanAPI.self, "POST", "/api/v1/plans", json: try JSON.parse(text), token: who)
        }
        // carol may deploy to demo and staging only.
        try post(Self.document(env: "prod"), "carol").expectRefused(
            403, "forbidden", .audited(actor: "carol", subject: "plan/demo-twice"))
        // Grants come before the store: carol learns nothing of what exists in prod's place.
        try post(Self.document(env: "qa"), "carol").expectRefused(
            403, "forbidden", .audited(actor: "carol", subject: "plan/demo-twice"))
        let unknown = try post(Self.document(env: "qa"), "alice")
        unknown.expectRefused(422, "invalid-field", .audited(actor: "alice", subject: "plan/demo-twice"))
        #expect(unknown.json?["pointer"] == "/steps/0/environment")
        let bad = try post(Self.document(wait: "soon"), "alice")
        bad.expectRefused(422, "invalid-field", .audited(actor: "alice", subject: "plan/demo-twice"))
        #expect(bad.json?["detail"] == #"/steps/1/duration: must be a duration such as "30s", "10m", "1h30m" or "2d""#)
        try h.call(
            PlanAPI.self, "POST", "/api/v1/plans", body: Array("[1]".utf8), contentType: "application/json",
            token: "alice"
        ).expectRefused(400, "malformed-request", .audited(actor: "alice", subject: ""))
        try post(Self.document(), "nobody-token").expectRefused(401, "unauthenticated", .counted)

        #expect(try post(Self.document(env: "prod"), "alice").status == 201)
        try post(Self.document(version: 7, env: "prod"), "alice").expectRefused(
            409, "conflict", .audited(actor: "alice", subject: "plan/demo-twice"))
        // A plan on prod is not carol's to read: answered as one that does not exist.
        try h.call(PlanAPI.self, "GET", "/api/v1/plans/demo-twice", token: "carol").expectRefused(
            404, "not-found", .audited(actor: "carol", subject: "plan/demo-twice"))
        try h.call(PlanAPI.self, "GET", "/api/v1/plans/nope", token: "carol").expectRefused(
            404, "not-found", .audited(actor: "carol", subject: "plan/nope"))
        try h.call(PlanAPI.self, "GET", "/api/v1/plans/demo-twice?version=x", token: "alice").expectRefused(
            422, "invalid-field", .audited(actor: "alice", subject: "plan/demo-twice"))
        let listed = try h.call(PlanAPI.self, "GET", "/api/v1/plans", token: "carol")
        #expect(listed.json == ["plans": []])
        try h.call(PlanAPI.self, "DELETE", "/api/v1/plans/demo-twice", token: "alice").expectRefused(
            405, "method-not-allowed", .counted)
    }
}

extension DravenError {
    var isConflict: Bool { if case .conflict = self { true } else { false } }
}
