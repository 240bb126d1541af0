import Testing

@testable import DravenCore

@Suite struct ConfigValidationTests {
    static func validate(_ text: String) throws -> Config {
        try Config.validate(try JSON.parse(text), file: "draven.toml")
    }

    static func problems(_ text: String) -> [String] {
        do {
            _ = try validate(text)
            return []
        } catch let error as ConfigError {
            return error.problems.map { "\($0.key): \($0.reason)" }
        } catch {
            return ["unexpected \(error)"]
        }
    }

    @Test func theTestConfigurationIsValid() throws {
        let config = try Self.validate(TestStore.config)
        #expect(config.projects.map(\.name) == ["shop"])
        let prod = try #require(config.projects[0].environments.first { $0.name == "prod" })
        #expect(prod.approvals == 2 && prod.lock == .queue && prod.lease == 600 && prod.approvalTTL == 86400)
        #expect(config.grants.count == 2)
    }

    @Test(arguments: [
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "lock": "wait"}}}}}"#,
            #"projects.p.environments.e.lock: must be "queue" or "reject", not "wait""#
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "aprovals": 2}}}}}"#,
            "projects.p.environments.e.aprovals: is not a known setting"
        ),
        (#"{"projects": {"p": {"environments": {"e": {}}}}}"#, "projects.p.environments.e.refs: is required"),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["v*"]}}}}}"#,
            "projects.p.environments.e.refs: \"v*\" must be KIND:GLOB"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "approvals": 2}}}}}"#,
            "projects.p.environments.e.approver_groups: is required when approvals > 0"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "approvals": -1}}}}}"#,
            "projects.p.environments.e.approvals: must be an integer from 0 to 20"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "lease": "soon"}}}}}"#,
            "projects.p.environments.e.lease: must be a duration"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"], "on_failure": ["retry"]}}}}}"#,
            "projects.p.environments.e.on_failure: \"retry\" must be"
        ),
        (#"{"projects": {"p": {"environments": {}}}}"#, "projects.p.environments: declare at least one environment"),
        (#"{"projects": {"p q": {"environments": {}}}}"#, "projects.p q: a project name may contain only"),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"]}}, "integration": "#
                + #"{"provider": "svn", "repo": "r", "method": "m"}}}}"#,
            "projects.p.integration.provider: must be github, gitlab, bitbucket or bitbucket-dc"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"]}}, "integration": "#
                + #"{"provider": "github", "repo": "r", "method": "trigger", "pipelines": {"*": "d.yml"}}}}}"#,
            "projects.p.integration.method: github supports workflow_dispatch"
        ),
        (
            #"{"projects": {"p": {"environments": {"e": {"refs": ["tag:v*"]}}, "integration": "#
                + #"{"provider": "github", "repo": "r", "method": "workflow_dispatch", "#
                + #""pipelines": {"x": "d.yml"}}}}}"#,
            "projects.p.integration.pipelines: has no pipeline for environment \"e\""
        ),
        (#"{"people": {"a": {}}, "groups": {"g": ["a", "zed"]}}"#, "groups.g: names \"zed\", who is not in [people]"),
        (
            #"{"grants": [{"person": "nobody", "project": "*", "actions": ["read"]}]}"#,
            "grants[0].person: \"nobody\" is not in [people]"
        ),
        (
            #"{"people": {"a": {}}, "grants": [{"person": "a", "project": "*", "actions": ["nuke"]}]}"#,
            "grants[0].actions: \"nuke\" must be"
        ),
        (
            #"{"people": {"a": {}}, "grants": [{"project": "*", "actions": ["read"]}]}"#,
            "grants[0]: name exactly one of person or group"
        ),
        (#"{"api": {"token_header": "X Token"}}"#, "api.token_header: must be an HTTP header name"),
        (#"{"people": {"a": {"chat": {"irc": "x"}}}}"#, "people.a.chat.irc: must be slack, teams or mattermost"),
        (#"{"colour": "blue"}"#, "colour: is not a known setting"),
    ])
    func refusesNamingTheKey(_ text: String, _ expected: String) {
        let found = Self.problems(text)
        #expect(found.contains { $0.hasPrefix(expected) }, "\(found)")
    }

    @Test func reportsEveryProblemAtOnce() {
        let found = Self.problems(
            #"{"projects": {"p": {"environments": {"e": {"refs": ["x"], "lock": "no", "lease": 0}}}}, "x": 1}"#)
        #expect(found.count == 4, "\(found)")
    }

    @Test func errorMessageNamesFileKeyAndReason() {
        let error = ConfigError(
            file: "/etc/draven.toml", problems: [.init(key: "projects.p.lock", reason: "must be queue")])
        #expect(error.description == "/etc/draven.toml: projects.p.lock: must be queue")
    }
}

@Suite struct ConfigApplyTests {
    @Test func applyIsVersionedAndPoliciesKeepTheirVersionUnlessChanged() throws {
        let store = try TestStore()
        #expect(try store.count("config_versions") == 1)
        let again = try store.apply(TestStore.config)
        #expect(again.version == 2 && again.policiesChanged.isEmpty)
        let changed = try store.apply(TestStore.config.replacingOccurrences("\"approvals\": 2", "\"approvals\": 3"))
        #expect(changed.policiesChanged == ["shop/prod"])
        #expect(try Policy.load(store.db, environmentID: try store.environmentID("shop", "prod")).version == 2)
        #expect(try store.count("audit", "action = 'config.apply'") == 3)
    }

    @Test func droppedNamesAreRetiredNotDeleted() throws {
        let store = try TestStore()
        _ = try store.newJob("demo")
        try store.apply(
            TestStore.config
                .replacingOccurrences(
                    #""demo": {"refs": ["branch:develop"], "lock": "queue", "lease": "5m"}"#,
                    #""qa": {"refs": ["branch:*"]}"#
                )
                .replacingOccurrences(#"["demo", "staging"]"#, #"["qa", "staging"]"#)
                .replacingOccurrences(#""carol": {}"#, #""dora": {}"#)
                .replacingOccurrences(#""developers": ["carol"]"#, #""developers": ["dora"]"#))
        #expect(try store.count("environments", "name = 'demo' AND retired = 1") == 1)
        #expect(try store.count("jobs") == 1)
        #expect(try store.count("people", "handle = 'carol' AND disabled = 1") == 1)
        #expect(
            try Grants.allows(
                store.db, person: try store.personID("dora"), action: .deploy, project: "shop", environment: "qa"))
    }

    @Test func grantsReachGroupMembersAndWildcards() throws {
        let store = try TestStore()
        let carol = try store.personID("carol")
        let alice = try store.personID("alice")
        #expect(try Grants.allows(store.db, person: carol, action: .deploy, project: "shop", environment: "demo"))
        #expect(try !Grants.allows(store.db, person: carol, action: .deploy, project: "shop", environment: "prod"))
        #expect(try !Grants.allows(store.db, person: carol, action: .approve, project: "shop", environment: "demo"))
        #expect(try Grants.allows(store.db, person: alice, action: .approve, project: "anything", environment: "prod"))
        #expect(try !Grants.allows(store.db, person: alice, action: .rollback, project: "shop", environment: "prod"))
    }
}

extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        precondition(contains(a), "test fixture lacks \(a)")
        return replacing(a, with: b)
    }
}
