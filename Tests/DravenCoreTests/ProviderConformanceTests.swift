import Glibc
import Testing

@testable import DravenCore
@testable import DravenFunctions

/// Every provider (`CIProvider`) over the real payloads in events/ (see events/SOURCES.md), read
/// as webhook-receive reads them: the provider's signature verifies the exact bytes, a mapped
/// event is decoded and reports its state, any other event is at most a push whose moves are
/// scanned. Every fixture found on disk must be described below, and every description must have
/// its fixture; a fixture that stops parsing, or a provider that reads it otherwise, fails.
@Suite struct ProviderConformanceTests {
    /// What draven reads from a fixture.
    enum Reads: Sendable, Equatable {
        /// A mapped event reporting this job state.
        case state(JobState)
        /// A mapped event that only informs (recorded in the job's history, moves nothing).
        case recorded
        /// Not read at all: verified, deduplicated and answered 200.
        case irrelevant
        /// A push: the refs it moved and their new heads (`ref sha`); a deletion moves nothing.
        case push([String])
    }

    /// The directories of events/ holding webhook payloads, and whose they are.
    static let directories: [String: Provider] = [
        "github": .github, "gitlab": .gitlab, "bitbucket-cloud": .bitbucketCloud, "bitbucket-dc": .bitbucketDataCenter,
    ]

    /// Each fixture: the event header it is sent with (events/SOURCES.md) and what it reads as.
    static let expected: [String: (event: String, reads: Reads)] = [
        "github/workflow_run.completed.json": ("workflow_run", .state(.succeeded)),
        "github/workflow_run.requested.json": ("workflow_run", .state(.running)),
        "github/workflow_job.queued.json": ("workflow_job", .state(.running)),
        "github/workflow_job.completed.failure.json": ("workflow_job", .recorded),  // the run decides
        "github/deployment_status.created.json": ("deployment_status", .state(.succeeded)),
        "github/check_suite.completed.json": ("check_suite", .irrelevant),
        "github/ping.json": ("ping", .irrelevant),
        "github/push.json": ("push", .push([])),  // deletes tag simple-tag
        "gitlab/pipeline_hook.json": ("Pipeline Hook", .state(.succeeded)),
        "gitlab/job_hook.json": ("Job Hook", .recorded),  // the pipeline decides
        "gitlab/deployment_hook.json": ("Deployment Hook", .recorded),
        "bitbucket-cloud/repo_commit_status_created.json": ("repo:commit_status_created", .state(.running)),
        "bitbucket-cloud/repo_commit_status_updated.json": ("repo:commit_status_updated", .state(.succeeded)),
        "bitbucket-cloud/repo_push.json":
            ("repo:push", .push(["refs/heads/name-of-branch 709d658dc5b6d6afcd46049c2f332ee3f515a67d"])),
        "bitbucket-dc/repo_refs_changed.json": ("repo:refs_changed", .push([])),  // deletes branch feature/wip
    ]

    /// The payload files on disk: every `*.json` in every directory of events/ but `schemas`
    /// (directory names have no dot; README.md and SOURCES.md are files).
    static func fixtures() -> [String] {
        entries(Fixtures.root).filter { $0 != "schemas" && !$0.contains(".") }.flatMap { dir in
            entries(Fixtures.root + dir).filter { $0.hasSuffix(".json") }.map { dir + "/" + $0 }
        }.sorted()
    }

    static func entries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    static func provider(of file: String) -> Provider? {
        directories[String(file.prefix { $0 != "/" })]
    }

    @Test func everyDescribedFixtureIsOnDiskAndEveryProviderHasOne() {
        let onDisk = Set(Self.fixtures())
        for file in Self.expected.keys { #expect(onDisk.contains(file), "\(file) is described but not in events/") }
        let covered = Set(onDisk.compactMap(Self.provider(of:)))
        for provider in Provider.allCases {
            #expect(covered.contains(provider), "no fixture of \(provider) in events/")
        }
    }

    @Test(arguments: fixtures())
    func everyFixtureReadsThroughItsProvider(_ file: String) throws {
        let provider = try #require(Self.provider(of: file), "events/\(file): a directory of no provider")
        let (event, reads) = try #require(Self.expected[file], "events/\(file) is not described here")
        let ci = provider.ci
        let bytes = Fixtures.bytes(file)
        // It parses, as webhook-receive parses provider bodies (and strictly: no key repeated).
        let payload = try JSON.parse(bytes, duplicateKeys: .lastWins)
        #expect(try JSON.parse(bytes, duplicateKeys: .refuse) == payload)
        let mapped = ci.maps(event: event)
        let parsed = ci.parse(event: event, payload: payload)
        #expect(parsed.name == event)
        switch reads {
        case .state(let state):
            #expect(mapped && parsed.relevant && parsed.state == state)
            #expect(!ci.isPush(event: event))
        case .recorded:
            #expect(mapped && parsed.relevant && parsed.state == nil)
            #expect(!ci.isPush(event: event))
        case .irrelevant:
            #expect(!mapped && !parsed.relevant && !ci.isPush(event: event))
        case .push(let moves):
            #expect(!mapped && !parsed.relevant && ci.isPush(event: event))
            #expect(ci.pushMoves(bytes).map { "\($0.ref) \($0.sha)" } == moves)
        }
        // No other provider reads this event name as the same thing (a route serving two providers
        // reads each delivery by its integration's provider only).
        #expect(
            Provider.allCases.filter { $0.ci.maps(event: event) || $0.ci.isPush(event: event) }.count <= 1,
            "\(event) is read by more than one provider")
    }

    /// The real pushes that delete a ref, changed to move it instead: then they name it and its head.
    @Test(arguments: [
        ("github/push.json", "refs/tags/simple-tag"), ("bitbucket-dc/repo_refs_changed.json", "refs/heads/feature/wip"),
    ])
    func deletingPushesMoveTheirRefOnceTheyUpdateIt(_ file: String, _ ref: String) throws {
        let provider = try #require(Self.provider(of: file))
        let head = String(repeating: "5", count: 40)
        var payload = try #require(try JSON.parse(Fixtures.bytes(file)).objectValue)
        switch provider {
        case .github:
            payload["after"] = .string(head)
            payload["deleted"] = false
        case .bitbucketDataCenter:
            var change = try #require(payload["changes"]?.arrayValue?.first?.objectValue)
            change["toHash"] = .string(head)
            change["type"] = "UPDATE"
            payload["changes"] = [.object(change)]
        case .gitlab, .bitbucketCloud:
            Issue.record("\(file): no deleting push of \(provider) is described")
        }
        #expect(
            provider.ci.pushMoves(JSON.object(payload).serializedBytes()).map { "\($0.ref) \($0.sha)" }
                == ["\(ref) \(head)"])
    }

    /// How each provider signs a delivery (../shared/reference/providers.md §1): the headers for
    /// `body` with `secret`.
    static func signed(_ provider: Provider, _ body: [UInt8], secret: String) -> [String: String] {
        let key = SecretBytes(copying: Array(secret.utf8), label: "t")
        let mac = Hex.encode(Sodium.hmacSHA256(key: key, message: body))
        return switch provider {
        case .github: ["x-hub-signature-256": "sha256=" + mac]
        case .gitlab: ["x-gitlab-token": secret]
        case .bitbucketCloud, .bitbucketDataCenter: ["x-hub-signature": "sha256=" + mac]
        }
    }

    /// Each provider verifies its fixtures signed as it signs them, and refuses them signed with
    /// another secret or not at all; the event and delivery headers are read from where it sends them.
    @Test(arguments: fixtures())
    func everyFixtureVerifiesAsItsProviderSignsIt(_ file: String) throws {
        let provider = try #require(Self.provider(of: file))
        let ci = provider.ci
        let body = Fixtures.bytes(file)
        let secret = SecretBytes(copying: Array("the-webhook-secret".utf8), label: "t")
        func request(_ headers: [String: String]) -> Request {
            Request(
                method: "POST", path: "/hooks/\(ci.hookRoute)", headers: headers, contentType: "application/json",
                body: body)
        }
        try ci.verify(request(Self.signed(provider, body, secret: "the-webhook-secret")), secret: secret)
        #expect(throws: DravenError.self) {
            try ci.verify(request(Self.signed(provider, body, secret: "another-secret")), secret: secret)
        }
        #expect(throws: DravenError.self) { try ci.verify(request([:]), secret: secret) }
        // The route exists and serves this provider's webhooks.
        _ = try WebhookReceive.router.resolve(request([:]))
        #expect(ci.eventHeader == ci.eventHeader.lowercased() && !ci.eventHeader.isEmpty)
        #expect(!ci.deliveryHeaders.isEmpty && ci.deliveryHeaders.allSatisfy { $0 == $0.lowercased() })
    }

    /// What a provider's calls for a sample target are: the URL of each, or nil when it refuses.
    struct Calls: Sendable {
        var dispatch: String?
        var poll: String?
        var cancel: String?
        /// Whether `RunControl.refusal` says why runs of the integration are not polled or cancelled.
        var refused = false
    }

    /// Every method of every provider (found from the providers, so a new one must be described).
    static let methods: [String: Calls] = [
        "github workflow_dispatch": Calls(
            dispatch: "https://api.github.com/repos/acme/shop/actions/workflows/deploy.yml/dispatches",
            poll: "https://api.github.com/repos/acme/shop/actions/runs/77",
            cancel: "https://api.github.com/repos/acme/shop/actions/runs/77/cancel"),
        // A pipeline trigger token starts pipelines and nothing else.
        "gitlab trigger": Calls(
            dispatch: "https://gitlab.com/api/v4/projects/acme%2Fshop/trigger/pipeline",
            poll: nil, cancel: nil, refused: true),
        "gitlab pipeline": Calls(
            dispatch: "https://gitlab.com/api/v4/projects/acme%2Fshop/pipeline",
            poll: "https://gitlab.com/api/v4/projects/acme%2Fshop/pipelines/77",
            cancel: "https://gitlab.com/api/v4/projects/acme%2Fshop/pipelines/77/cancel"),
        "bitbucket custom_pipeline": Calls(
            dispatch: "https://api.bitbucket.org/2.0/repositories/acme/shop/pipelines/",
            poll: "https://api.bitbucket.org/2.0/repositories/acme/shop/pipelines/77",
            cancel: "https://api.bitbucket.org/2.0/repositories/acme/shop/pipelines/77/stopPipeline"),
        // Data Center has no pipelines: webhooks only.
        "bitbucket-dc none": Calls(dispatch: nil, poll: nil, cancel: nil),
    ]

    static func providerMethods() -> [String] {
        Provider.allCases.flatMap { provider in provider.ci.methods.sorted().map { "\(provider) \($0)" } }
    }

    @Test func everyDescribedMethodIsAProvidersMethod() {
        #expect(Set(Self.methods.keys) == Set(Self.providerMethods()))
    }

    @Test(arguments: providerMethods())
    func everyProviderBuildsItsCallsOrRefuses(_ key: String) throws {
        let parts = key.split(separator: " ").map(String.init)
        let provider = try #require(Provider(rawValue: parts[0]))
        let want = try #require(Self.methods[key], "\(key) is not described here")
        let integration: JSONObject = ["token_secret": "ci-token", "pipelines": ["*": "deploy.yml"]]
        let target = Dispatch.Target(
            jobID: 12, environment: "prod", ref: "refs/heads/main", refKind: .branch, sha: nil,
            fencingToken: 3, integration: integration, provider: provider, repo: "acme/shop",
            method: parts[1])
        func check(_ url: String?, _ build: () throws(DispatchError) -> OutboundRequest) {
            guard let url else {
                #expect(throws: DispatchError.self, "\(key) should refuse") { try build() }
                return
            }
            do {
                let request = try build()
                #expect(request.url == url)
                #expect(request.credential != nil, "\(key): sent without its credential")
                #expect(request.secretName == "ci-token", "\(key): sent with another credential")
            } catch {
                Issue.record("\(key): \(error)")
            }
        }
        check(want.dispatch) { () throws(DispatchError) in try Dispatch.request(for: target) }
        check(want.poll) { () throws(DispatchError) in try RunControl.request(.poll, runID: "77", target: target) }
        check(want.cancel) { () throws(DispatchError) in try RunControl.request(.cancel, runID: "77", target: target) }
        #expect((RunControl.refusal(target) != nil) == want.refused)
        // Once started, a run is polled through the same table as its webhooks.
        if want.poll != nil {
            let polled = RunControl.event(provider: provider, body: Array(#"{"id": 77, "uuid": "{77}"}"#.utf8))
            #expect(polled?.runKey != nil, "\(key): a polled run of no id")
        }
    }
}
