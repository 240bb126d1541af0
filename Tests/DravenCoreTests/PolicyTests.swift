import Testing

@testable import DravenCore

@Suite struct GitRefTests {
    @Test(
        arguments: [
            ("refs/heads/develop", nil, Set<RefKind>([.branch]), RefKind.branch, "develop"),
            ("refs/tags/v1.2.0", nil, [.branch], .tag, "v1.2.0"),
            ("v1.2.0", nil, [.tag], .tag, "v1.2.0"),
            ("develop", nil, [.branch, .sha], .branch, "develop"),
            ("main", "branch", [.branch, .tag], .branch, "main"),
            ("refs/heads/release/2.0", "branch", [], .branch, "release/2.0"),
            (String(repeating: "a", count: 40), nil, [.branch, .tag], .sha, String(repeating: "a", count: 40)),
        ] as [(String, String?, Set<RefKind>, RefKind, String)])
    func parses(_ raw: String, _ kind: String?, _ policy: Set<RefKind>, _ expected: RefKind, _ name: String) throws {
        let ref = try GitRef.parse(raw, kind: kind, policyKinds: policy)
        #expect(ref.kind == expected)
        #expect(ref.name == name)
    }

    @Test func qualifiedNamesAreWhatPipelinesGet() {
        #expect(GitRef(kind: .branch, name: "x").qualified == "refs/heads/x")
        #expect(GitRef(kind: .tag, name: "v1").qualified == "refs/tags/v1")
    }

    @Test(
        arguments: [
            ("main", nil, Set<RefKind>([.branch, .tag]), "/ref"),  // ambiguous
            ("main", nil, [], "/ref"),  // no rules: still ambiguous
            ("refs/remotes/origin/main", nil, [.branch], "/ref"),
            ("refs/tags/v1", "branch", [.branch], "/ref_kind"),  // kind contradicts the qualified ref
            ("main", "commit", [.branch], "/ref_kind"),
            ("-rf", "branch", [.branch], "/ref"),
            ("a..b", "branch", [.branch], "/ref"),
            ("a b", "branch", [.branch], "/ref"),
            ("a~1", "branch", [.branch], "/ref"),
            ("x.lock", "branch", [.branch], "/ref"),
            ("a//b", "branch", [.branch], "/ref"),
            ("a@{1}", "branch", [.branch], "/ref"),
            ("a/.b", "branch", [.branch], "/ref"),
            ("@", "branch", [.branch], "/ref"),
            ("feature/", "branch", [.branch], "/ref"),
            ("abc", "sha", [.sha], "/ref"),
            ("", "branch", [.branch], "/ref"),
        ] as [(String, String?, Set<RefKind>, String)])
    func refuses(_ raw: String, _ kind: String?, _ policy: Set<RefKind>, _ pointer: String) {
        let error = #expect(throws: DravenError.self) { try GitRef.parse(raw, kind: kind, policyKinds: policy) }
        guard case .invalidField(let p, _)? = error else {
            Issue.record("expected invalidField, got \(String(describing: error))")
            return
        }
        #expect(p == pointer)
    }
}

@Suite struct PolicyTests {
    let policy = Policy(
        environmentID: 1, version: 1, approvalsRequired: 0, lockMode: .queue, leaseSeconds: 60,
        refs: [.init(kind: .tag, pattern: "v*"), .init(kind: .branch, pattern: "release/*")])

    @Test(arguments: [(RefKind.tag, "v1.0.0"), (.tag, "v2"), (.branch, "release/1.x"), (.branch, "release/a/b")])
    func allows(_ kind: RefKind, _ name: String) throws {
        try policy.check(GitRef(kind: kind, name: name), environment: "prod")
    }

    @Test(arguments: [
        (RefKind.branch, "v1.0.0"), (.tag, "1.0"), (.branch, "main"), (.tag, "release/1"),
        (.sha, String(repeating: "f", count: 40)),
    ])
    func refusesNamingTheRule(_ kind: RefKind, _ name: String) {
        let error = #expect(throws: DravenError.self) {
            try policy.check(GitRef(kind: kind, name: name), environment: "prod")
        }
        guard case .policyDenied(let rule, let detail)? = error else {
            Issue.record("wrong error")
            return
        }
        #expect(rule == "refs")
        #expect(detail.contains("prod accepts only tag v*, branch release/*"))
    }

    @Test func globIsFnmatchWithoutPathname() {
        #expect(Policy.glob("*", matches: "a/b"))
        #expect(Policy.glob("v[0-9]*", matches: "v1.2"))
        #expect(!Policy.glob("v[0-9]*", matches: "vx"))
        #expect(Policy.glob("release-?", matches: "release-1"))
        #expect(!Policy.glob("release-?", matches: "release-10"))
    }
}
