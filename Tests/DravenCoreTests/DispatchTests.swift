import Testing

@testable import DravenCore

@Suite struct DispatchOutcomeTests {
    static func response(_ status: Int, _ body: String) -> OutboundResponse {
        OutboundResponse(status: status, body: Array(body.utf8))
    }

    @Test func successesCarryTheRunIDAndPage() {
        #expect(
            Dispatch.outcome(
                provider: .github, repo: "a/b",
                response: Self.response(200, #"{"workflow_run_id": 77, "html_url": "https://x/77"}"#))
                == .started(runID: "77", url: "https://x/77"))
        #expect(
            Dispatch.outcome(provider: .github, repo: "a/b", response: Self.response(204, ""))
                == .started(runID: nil, url: nil))
        #expect(
            Dispatch.outcome(
                provider: .gitlab, repo: "a/b",
                response: Self.response(201, #"{"id": 5, "web_url": "https://g/5"}"#))
                == .started(runID: "5", url: "https://g/5"))
        #expect(
            Dispatch.outcome(
                provider: .bitbucketCloud, repo: "a/b",
                response: Self.response(201, #"{"uuid": "{u}", "build_number": 9}"#))
                == .started(runID: "{u}", url: "https://bitbucket.org/a/b/pipelines/results/9"))
    }

    @Test(arguments: [400, 401, 403, 404, 422])
    func clientErrorsAreFinal(_ status: Int) {
        let outcome = Dispatch.outcome(
            provider: .github, repo: "a/b",
            response: Self.response(status, #"{"message": "No ref found for: x"}"#))
        #expect(outcome == .rejected("github refused the dispatch (HTTP \(status)): No ref found for: x"))
    }

    @Test(arguments: [408, 429, 500, 502, 503, 504])
    func serverErrorsAndThrottlingAreRetried(_ status: Int) {
        guard case .retry = Dispatch.outcome(provider: .gitlab, repo: "a/b", response: Self.response(status, "")) else {
            Issue.record("\(status) should be retried")
            return
        }
    }

    @Test func githubRateLimitIsRetried() {
        let r = Self.response(403, #"{"message": "API rate limit exceeded for installation"}"#)
        guard case .retry = Dispatch.outcome(provider: .github, repo: "a/b", response: r) else {
            Issue.record("not retried")
            return
        }
    }

    @Test func requestsNeverCarryTheSecretInline() throws {
        var t = Dispatch.Target(
            jobID: 1, environment: "prod", ref: "refs/tags/v1", refKind: .tag, sha: nil, fencingToken: 3,
            integration: ["token_secret": "t", "pipelines": ["*": "d.yml"]], provider: .github,
            repo: "a/b", method: "workflow_dispatch")
        let gh = try Dispatch.request(for: t)
        #expect(gh.secretName == "t" && gh.url == "https://api.github.com/repos/a/b/actions/workflows/d.yml/dispatches")
        t.provider = .gitlab
        t.method = "trigger"
        let gl = try Dispatch.request(for: t)
        #expect(String(decoding: gl.body, as: UTF8.self).hasPrefix("token=\(OutboundRequest.bodyPlaceholder)&ref=v1&"))
        #expect(gl.url == "https://gitlab.com/api/v4/projects/a%2Fb/trigger/pipeline")
        t.provider = .github
        t.refKind = .sha
        t.ref = String(repeating: "a", count: 40)
        #expect(throws: DispatchError.self) { try Dispatch.request(for: t) }
        t.integration = ["pipelines": ["*": "d.yml"]]
        #expect(throws: DispatchError.self) { try Dispatch.request(for: t) }
    }
}

/// A transport that answers from a script and records what it was asked.
final class ScriptedTransport: HTTPTransport {
    var answers: [Result<OutboundResponse, TransportError>]
    var sent: [(OutboundRequest, String?)] = []
    init(_ answers: [Result<OutboundResponse, TransportError>]) { self.answers = answers }
    func send(_ request: OutboundRequest, credential: SecretBytes?) throws(TransportError) -> OutboundResponse {
        sent.append((request, credential?.utf8()))
        switch answers.removeFirst() {
        case .success(let r): return r
        case .failure(let e): throw e
        }
    }
}

@Suite struct DeliveryTests {
    /// A store whose demo environment has a dispatching job (and one queued behind it).
    static func setUp() throws -> (TestStore, Int64, Int64) {
        let store = try TestStore()
        let paths = SecretsPaths(store.paths)
        try SecretsAdmin.initialize(paths, db: store.db, actor: "t", now: store.now)
        try SecretsAdmin.update(paths, db: store.db, actor: "t", now: store.now) { d in
            (try d.set("gh", kind: .token, value: SecretBytes(copying: Array("tok".utf8), label: "gh")), ["gh"])
        }
        try store.db.run(#"UPDATE integrations SET document = '{"token_secret":"gh","pipelines":{"*":"d.yml"}}'"#)
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        let first = try store.newJob()
        let second = try store.newJob()
        try store.db.immediate { tx in
            try StateMachine.start(tx, job: first, policy: policy, actor: "t", now: store.now)
            try StateMachine.start(tx, job: second, policy: policy, actor: "t", now: store.now)
        }
        return (store, first, second)
    }

    static func ok() -> Result<OutboundResponse, TransportError> {
        .success(OutboundResponse(status: 200, body: Array(#"{"workflow_run_id":9}"#.utf8)))
    }

    @Test func successMovesTheJobToRunning() throws {
        let (store, first, _) = try Self.setUp()
        let transport = ScriptedTransport([Self.ok()])
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        #expect(try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now }) == 1)
        #expect(try store.state(first) == .running)
        #expect(transport.sent.count == 1 && transport.sent[0].1 == "tok")
        #expect(try store.db.first("SELECT run_id FROM jobs WHERE id = ?1", [.int(first)]) { $0.text(0) } == "9")
    }

    @Test func aRejectionFailsTheJobAndTheNextQueuedJobIsDispatchedInTheSameRun() throws {
        let (store, first, second) = try Self.setUp()
        let transport = ScriptedTransport([
            .success(OutboundResponse(status: 404, body: Array(#"{"message":"Not Found"}"#.utf8))), Self.ok(),
        ])
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(try store.state(first) == .failed)
        #expect(try store.state(second) == .running)
        #expect(transport.sent.count == 2)
    }

    @Test func retriesBackOffAndGiveUpAfterTheLimit() throws {
        let (store, first, second) = try Self.setUp()
        let timeout = TransportError(message: "timed out after 10s", retryable: true, timedOut: true)
        // 3 for the first job, 1 for the promoted one
        let transport = ScriptedTransport(Array(repeating: .failure(timeout), count: 4))
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        delivery.maxAttempts = 3
        var now = store.now
        var delays: [Int64] = []
        for _ in 0..<3 {
            #expect(try Delivery.due(store.db, now: now).count == 1)
            try delivery.deliver(Delivery.due(store.db, now: now), now: { now })
            if let next = try store.db.scalar(
                "SELECT next_attempt_at FROM outbox WHERE state = 'pending' AND job_id = ?1", [.int(first)])
            {
                delays.append(next - now)
                #expect(try Delivery.due(store.db, now: now).isEmpty, "not due before its backoff")
                now = next
            }
        }
        #expect(
            delays.count == 2 && delays[0] >= 5 && delays[0] <= 10 && delays[1] >= 10 && delays[1] <= 20, "\(delays)")
        #expect(try store.state(first) == .failed)
        #expect(try store.state(second) == .dispatching, "the lock passed to the queued job")
    }

    @Test func aClaimedRowIsNotDeliveredTwice() throws {
        let (store, _, _) = try Self.setUp()
        let id = try #require(try Delivery.due(store.db, now: store.now).first)
        try store.db.run(
            "UPDATE outbox SET state = 'delivering', next_attempt_at = ?2 WHERE id = ?1",
            [.int(id), .int(store.now + 180)])
        let transport = ScriptedTransport([])
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        #expect(try delivery.deliver([id], now: { store.now }) == 0)
        #expect(transport.sent.isEmpty)
        // …until its claim expires (the deliverer died): then it is due again.
        #expect(try Delivery.due(store.db, now: store.now + 181) == [id])
    }

    @Test func aJobThatLeftDispatchingIsNotDispatched() throws {
        let (store, first, _) = try Self.setUp()
        try store.db.immediate { tx in
            try StateMachine.transition(tx, job: first, to: .cancelled, actor: "t", now: store.now)
        }
        let transport = ScriptedTransport([Self.ok()])  // for the promoted second job
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(transport.sent.count == 1)
        #expect(
            try store.db.first("SELECT last_error FROM outbox WHERE job_id = ?1", [.int(first)]) { $0.text(0) }?
                .hasPrefix("skipped") == true)
    }
}
