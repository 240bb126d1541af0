import Testing

@testable import DravenCore
@testable import DravenFunctions

/// A store whose `shop/live` environment rolls back and runs a diagnostic on failure, with a one-minute lease.
func recoveryStore(onFailure: [String] = ["diagnostic", "rollback"]) throws -> TestStore {
    let policies = onFailure.map { "\"\($0)\"" }.joined(separator: ", ")
    return try TestStore(
        config: """
            {
              "people": {"alice": {}, "carol": {}},
              "projects": {"shop": {
                "integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                                "pipelines": {"*": "deploy.yml"}},
                "environments": {
                  "demo": {"refs": ["branch:*"], "lease": "1m", "on_failure": [\(policies)]},
                  "other": {"refs": ["branch:*"], "lease": "1m", "lock": "reject", "on_failure": [\(policies)]}
                }
              }},
              "grants": [{"person": "carol", "project": "*", "actions": ["deploy", "read", "rollback"]}]
            }
            """)
}

extension TestStore {
    /// A new job of `env`, moved to `dispatching` (lock taken) or `queued`.
    func started(_ env: String = "demo", branch: String = "main") throws -> Int64 {
        let id = try newJob(env, ref: GitRef(kind: .branch, name: branch))
        let policy = try Policy.load(db, environmentID: try environmentID("shop", env))
        _ = try db.immediate { tx in try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: now) }
        return id
    }

    /// A job of `env` that is running (it held the lock free).
    func running(_ env: String = "demo", branch: String = "main") throws -> Int64 {
        let id = try started(env, branch: branch)
        _ = try db.immediate { tx in try StateMachine.transition(tx, job: id, to: .running, actor: "t", now: now) }
        return id
    }

    func end(_ job: Int64, _ state: JobState) throws {
        _ = try db.immediate { tx in try StateMachine.report(tx, job: job, state: state, actor: "t", now: now) }
    }

    func token(_ job: Int64) throws -> Int64 {
        try db.scalar("SELECT fencing_token FROM jobs WHERE id = ?1", [.int(job)])!
    }

    func lockHolder(_ env: String = "demo") throws -> Locks.Holder? {
        try Locks.holder(db, environment: try environmentID("shop", env))
    }

    func children(_ job: Int64) throws -> [(Int64, String, JobState)] {
        try db.query("SELECT id, kind, state FROM jobs WHERE parent_job_id = ?1 ORDER BY id", [.int(job)]) {
            ($0.int(0), $0.text(1), JobState(rawValue: $0.text(2))!)
        }
    }
}

@Suite struct LeaseTests {
    @Test func aHeartbeatExtendsOnlyTheLeaseItsTokenHolds() throws {
        let store = try recoveryStore()
        let job = try store.running()
        let token = try store.token(job)
        let extended = try store.db.immediate { tx in try Locks.extend(tx, job: job, token: token, now: store.now + 30)
        }
        #expect(extended == store.now + 90)
        // Never shrinks: an earlier heartbeat (clock skew between writers) keeps the later lease.
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: job, token: token, now: store.now) } == store.now
                + 90)
        // An older or a newer token, or a lapsed lease, extends nothing.
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: job, token: token - 1, now: store.now) } == nil)
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: job, token: token + 1, now: store.now) } == nil)
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: job, token: token, now: store.now + 91) } == nil)
        #expect(try store.db.scalar("SELECT lease_until FROM locks WHERE job_id = ?1", [.int(job)]) == store.now + 90)
    }

    @Test func sweepTimesOutASilentJobAndItsSuccessorTakesTheLockWithANewerToken() throws {
        let store = try recoveryStore(onFailure: [])
        let first = try store.running()
        let old = try store.token(first)
        let second = try store.started(branch: "next")
        #expect(try store.state(second) == .queued)
        let sweeper = Sweeper()
        #expect(try sweeper.expireLeases(store.db, now: store.now + 60) == [])  // the lease runs to now + 60
        #expect(try sweeper.expireLeases(store.db, now: store.now + 61) == [first])
        #expect(try store.state(first) == .timedOut)
        #expect(try store.state(second) == .dispatching)
        let new = try store.token(second)
        #expect(new == old + 1)
        #expect(try store.lockHolder()?.jobID == second)
        // The silent job's token extends nothing; a second sweep changes nothing.
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: first, token: old, now: store.now + 62) } == nil)
        #expect(
            try store.db.immediate { tx in try Locks.extend(tx, job: second, token: old, now: store.now + 62) } == nil)
        let events = try store.count("job_events")
        let before = try StoreSnapshot(store.db)
        #expect(try sweeper.expireLeases(store.db, now: store.now + 61) == [])
        #expect(try store.count("job_events") == events)
        #expect(try StoreSnapshot(store.db) == before)
    }

    @Test func aDispatchingJobIsNotTimedOutByItsLeaseButFailedWhenStuck() throws {
        let store = try recoveryStore()
        let job = try store.started()
        let sweeper = Sweeper(pollAfter: 300, dispatchLimit: 900)
        #expect(try sweeper.expireLeases(store.db, now: store.now + 600) == [])
        // Its dispatch is still pending (being retried): left alone.
        #expect(try sweeper.failStuckDispatches(store.db, now: store.now + 1000) == [])
        try store.db.run("UPDATE outbox SET state = 'dead' WHERE job_id = ?1", [.int(job)])
        #expect(try sweeper.failStuckDispatches(store.db, now: store.now + 899) == [])
        #expect(try sweeper.failStuckDispatches(store.db, now: store.now + 900) == [job])
        #expect(try store.state(job) == .failed)
        #expect(try store.lockHolder() == nil)
        #expect(try store.children(job).isEmpty)  // it never ran: nothing to repair
        #expect(try sweeper.failStuckDispatches(store.db, now: store.now + 900) == [])
    }

    @Test func theLeaseRestartsWhenTheRunStarts() throws {
        let store = try recoveryStore()
        let job = try store.started()
        _ = try store.db.immediate { tx in
            try StateMachine.transition(tx, job: job, to: .running, actor: "t", now: store.now + 500)
        }
        #expect(try store.db.scalar("SELECT lease_until FROM locks WHERE job_id = ?1", [.int(job)]) == store.now + 560)
    }

    @Test func pollsAreQueuedOncePerSilentRun() throws {
        let store = try recoveryStore()
        let job = try store.running()
        let sweeper = Sweeper(pollAfter: 300)
        #expect(try sweeper.queuePolls(store.db, now: store.now + 400) == [])  // no run id yet
        try store.db.run("UPDATE jobs SET run_id = '77' WHERE id = ?1", [.int(job)])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 299) == [])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 300) == [job])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 300) == [])
        #expect(try store.count("outbox", "kind = 'poll' AND job_id = \(job)") == 1)
        // A provider event resets the silence.
        try store.db.run("UPDATE outbox SET state = 'delivered' WHERE kind = 'poll'")
        try store.db.run("UPDATE jobs SET provider_seen_at = ?2 WHERE id = ?1", [.int(job), .int(store.now + 300)])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 599) == [])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 600) == [job])
    }
}

@Suite struct RecoveryTests {
    @Test func aFailedDeployRunsTheDiagnosticThenRollsBackAheadOfQueuedDeploys() throws {
        let store = try recoveryStore()
        let good = try store.running(branch: "v1")
        try store.end(good, .succeeded)
        let bad = try store.running(branch: "v2")
        let waiting = try store.started(branch: "v3")
        try store.end(bad, .failed)
        let kids = try store.children(bad)
        #expect(kids.map(\.1) == ["diagnostic", "rollback"])
        #expect(kids.map(\.2) == [.dispatching, .queued])
        #expect(try store.lockHolder()?.jobID == kids[0].0)
        let rollback = try Job.require(store.db, id: kids[1].0)
        let live = try Releases.live(store.db, environment: rollback.environmentID)
        #expect(rollback.ref == "refs/heads/v1" && rollback.toRelease == live?.id && live?.jobID == good)
        // The diagnostic ends (even failing): the rollback goes before the deploy queued earlier.
        try store.end(kids[0].0, .failed)
        #expect(try store.state(kids[1].0) == .dispatching)
        #expect(try store.state(waiting) == .queued)
        #expect(try store.children(kids[0].0).isEmpty)
        // The rollback fails: it leads to nothing, and the queued deploy starts.
        try store.end(kids[1].0, .failed)
        #expect(try store.children(kids[1].0).isEmpty)
        #expect(try store.state(waiting) == .dispatching)
        #expect(try store.count("jobs", "kind != 'deploy'") == 2)
    }

    @Test func aTimedOutDeployRollsBackAndASucceededRollbackIsTheLiveRelease() throws {
        let store = try recoveryStore(onFailure: ["rollback"])
        let good = try store.running(branch: "v1")
        try store.end(good, .succeeded)
        let bad = try store.running(branch: "v2")
        #expect(try Sweeper().expireLeases(store.db, now: store.now + 61) == [bad])
        let kids = try store.children(bad)
        #expect(kids.count == 1 && kids[0].1 == "rollback" && kids[0].2 == .dispatching)
        _ = try store.db.immediate { tx in
            try StateMachine.transition(tx, job: kids[0].0, to: .running, actor: "t", now: store.now)
        }
        try store.end(kids[0].0, .succeeded)
        let env = try store.environmentID("shop", "demo")
        let history = try Releases.list(store.db, environment: env, limit: 10)
        #expect(history.map(\.jobID) == [kids[0].0, good])
        #expect(history[0].liveUntil == nil && history[1].liveUntil != nil && history[0].kind == "rollback")
    }

    @Test func withoutAReleaseThereIsNothingToRollBackTo() throws {
        let store = try recoveryStore(onFailure: ["rollback"])
        let bad = try store.running()
        try store.end(bad, .failed)
        #expect(try store.children(bad).isEmpty)
        #expect(try store.count("job_events", "job_id = \(bad) AND event = 'recovery'") == 1)
    }

    @Test func recoveryJobsQueueEvenUnderARejectPolicy() throws {
        let store = try recoveryStore()
        let good = try store.running("other", branch: "v1")
        try store.end(good, .succeeded)
        let bad = try store.running("other", branch: "v2")
        try store.end(bad, .timedOut)
        #expect(try store.children(bad).map(\.2) == [.dispatching, .queued])
    }

    @Test func aCancelledDeployLeadsToNothing() throws {
        let store = try recoveryStore()
        let good = try store.running(branch: "v1")
        try store.end(good, .succeeded)
        let job = try store.running(branch: "v2")
        try store.end(job, .cancelled)
        #expect(try store.children(job).isEmpty)
    }
}

@Suite struct RunControlTests {
    static func target(_ provider: Provider, kind: JobKind = .deploy) -> Dispatch.Target {
        Dispatch.Target(
            jobID: 7, environment: "prod", ref: "refs/tags/v1", refKind: .tag, sha: nil, fencingToken: 3,
            integration: [
                "token_secret": "t", "api_token_secret": "api", "project_id": "42", "pipelines": ["*": "d.yml"],
            ],
            provider: provider, repo: "a/b", method: provider == .gitlab ? "trigger" : "x", kind: kind)
    }

    @Test func pollAndCancelRequests() throws {
        let gh = try RunControl.request(.poll, runID: "99", target: Self.target(.github))
        #expect(
            gh.method == "GET" && gh.url == "https://api.github.com/repos/a/b/actions/runs/99" && gh.secretName == "t")
        let ghc = try RunControl.request(.cancel, runID: "99", target: Self.target(.github))
        #expect(ghc.method == "POST" && ghc.url.hasSuffix("/actions/runs/99/cancel"))
        let gl = try RunControl.request(.poll, runID: "5", target: Self.target(.gitlab))
        #expect(gl.url == "https://gitlab.com/api/v4/projects/42/pipelines/5" && gl.secretName == "api")
        let bb = try RunControl.request(.cancel, runID: "{u-1}", target: Self.target(.bitbucketCloud))
        #expect(bb.url == "https://api.bitbucket.org/2.0/repositories/a/b/pipelines/%7Bu-1%7D/stopPipeline")
        #expect(throws: DispatchError.self) {
            try RunControl.request(.poll, runID: "1", target: Self.target(.bitbucketDataCenter))
        }
    }

    @Test(
        arguments: [
            (.github, #"{"id": 9, "status": "completed", "conclusion": "failure"}"#, JobState.failed),
            (.github, #"{"id": 9, "status": "in_progress", "conclusion": null}"#, JobState.running),
            (.gitlab, #"{"id": 5, "status": "success", "web_url": "https://g/5"}"#, JobState.succeeded),
            (.gitlab, #"{"id": 5, "status": "canceled"}"#, JobState.cancelled),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "COMPLETED", "result": {"name": "SUCCESSFUL"}}}"#,
                JobState.succeeded
            ),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "COMPLETED", "result": {"name": "ERROR"}}}"#,
                JobState.failed
            ),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "COMPLETED", "result": {"name": "STOPPED"}}}"#,
                JobState.cancelled
            ),
            (.bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "IN_PROGRESS"}}"#, JobState.running),
        ] as [(Provider, String, JobState)])
    func polledRunsReadAsTheirWebhooks(_ c: (Provider, String, JobState)) throws {
        let event = try #require(RunControl.event(provider: c.0, body: Array(c.1.utf8)))
        #expect(event.state == c.2 && event.relevant)
    }

    @Test func eventsCarryTheCommitTheyBuild() throws {
        let sha = String(repeating: "d", count: 40)
        #expect(
            RunControl.event(
                provider: .github,
                body: Array(#"{"id": 1, "status": "queued", "head_sha": "\#(sha)"}"#.utf8))?.sha
                == sha)
        #expect(
            RunControl.event(
                provider: .gitlab,
                body: Array(#"{"id": 1, "status": "running", "sha": "\#(sha)"}"#.utf8))?.sha == sha)
        #expect(
            RunControl.event(
                provider: .bitbucketCloud,
                body: Array(
                    #"{"uuid": "{u}", "state": {"name": "IN_PROGRESS"}, "target": {"commit": {"hash": "\#(sha)"}}}"#
                        .utf8))?.sha == sha)
        #expect(
            RunControl.event(
                provider: .github,
                body: Array(#"{"id": 1, "status": "queued", "head_sha": "main"}"#.utf8))?.sha == nil)
    }

    @Test func rollbackAndDiagnosticDispatchesNameTheirTask() throws {
        let deploy = try JSON.parse(try Dispatch.request(for: Self.target(.github)).body)
        #expect(deploy["inputs"]?["task"] == nil)
        let rollback = try JSON.parse(try Dispatch.request(for: Self.target(.github, kind: .rollback)).body)
        #expect(rollback["inputs"]?["task"]?.stringValue == "rollback")
        let diagnostic = try Dispatch.request(for: Self.target(.gitlab, kind: .diagnostic))
        #expect(String(decoding: diagnostic.body, as: UTF8.self).hasSuffix("&variables%5BDRAVEN_TASK%5D=deploy%3Ainfo"))
        // A rollback pins the commit when it is known; a deploy's request never changes.
        var pinned = Self.target(.github, kind: .rollback)
        pinned.sha = String(repeating: "c", count: 40)
        #expect(try JSON.parse(try Dispatch.request(for: pinned).body)["inputs"]?["sha"]?.stringValue == pinned.sha)
        pinned.kind = .deploy
        #expect(try JSON.parse(try Dispatch.request(for: pinned).body)["inputs"]?["sha"] == nil)
    }
}

@Suite struct HeartbeatBodyTests {
    @Test func progressIsKeptAsGiven() throws {
        let b = try HeartbeatBody(
            try JSON.parse(#"{"fencing_token": 4, "progress": {"step": "migrate", "percent": 40}}"#))
        #expect(b.fencingToken == 4 && b.progress == #"{"step":"migrate","percent":40}"#)
        #expect(try HeartbeatBody(try JSON.parse(#"{"fencing_token": 4}"#)).progress == nil)
    }

    @Test(arguments: [
        #"[]"#, #"{}"#, #"{"fencing_token": 0}"#, #"{"fencing_token": "4"}"#, #"{"fencing_token": 4, "job_id": 1}"#,
        #"{"fencing_token": 4, "progress": "half"}"#, #"{"fencing_token": 4, "progress": {"percent": 101}}"#,
        #"{"fencing_token": 4, "progress": {"step": 3}}"#, #"{"fencing_token": 4, "progress": {"eta": 3}}"#,
    ])
    func refused(_ text: String) throws {
        #expect(throws: DravenError.self) { try HeartbeatBody(try JSON.parse(text)) }
    }
}

/// A transport that lets something else happen while its first call is in flight (another process acting meanwhile).
final class InterleavedTransport: HTTPTransport {
    let inner: ScriptedTransport
    let during: () throws -> Void
    var ran = false
    init(_ inner: ScriptedTransport, during: @escaping () throws -> Void) {
        self.inner = inner
        self.during = during
    }
    func send(_ request: OutboundRequest, credential: SecretBytes?) throws(TransportError) -> OutboundResponse {
        if !ran {
            ran = true
            try? during()
        }
        return try inner.send(request, credential: credential)
    }
}

@Suite struct RunCallTests {
    @Test func aJobCancelledWhileItsDispatchWasInFlightHasItsRunCancelled() throws {
        let (store, first, second) = try DeliveryTests.setUp()
        let scripted = ScriptedTransport([
            DeliveryTests.ok(), .success(OutboundResponse(status: 200, body: Array(#"{"workflow_run_id":10}"#.utf8))),
            .success(OutboundResponse(status: 202, body: Array("{}".utf8))),
        ])
        let transport = InterleavedTransport(scripted) {
            _ = try store.db.immediate { tx in
                try StateMachine.transition(tx, job: first, to: .cancelled, actor: "t", now: store.now)
            }
        }
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(try store.state(first) == .cancelled)
        #expect(try store.state(second) == .running)  // the cancel freed the lock
        #expect(
            scripted.sent.map { $0.0.method + " " + $0.0.url } == [
                "POST https://api.github.com/repos/acme/shop/actions/workflows/d.yml/dispatches",
                "POST https://api.github.com/repos/acme/shop/actions/workflows/d.yml/dispatches",
                "POST https://api.github.com/repos/acme/shop/actions/runs/9/cancel",
            ])
        #expect(try store.count("outbox", "kind = 'cancel' AND state = 'delivered' AND job_id = \(first)") == 1)
    }

    @Test func aPollAppliesTheRunsStateAsItsWebhookWould() throws {
        let (store, first, _) = try DeliveryTests.setUp()
        var delivery = Delivery(db: store.db, paths: store.paths, transport: ScriptedTransport([DeliveryTests.ok()]))
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(try store.state(first) == .running)
        #expect(try Sweeper(pollAfter: 60).queuePolls(store.db, now: store.now + 60) == [first])
        let polled = ScriptedTransport([
            .success(
                OutboundResponse(
                    status: 200,
                    body: Array(
                        #"{"id": 9, "status": "completed", "conclusion": "timed_out", "html_url": "https://gh/9"}"#.utf8
                    ))), DeliveryTests.ok(),
        ])
        delivery = Delivery(db: store.db, paths: store.paths, transport: polled)
        try delivery.deliver(Delivery.due(store.db, now: store.now + 60), now: { store.now + 60 })
        // The poll, then the dispatch of the job queued behind (the failure freed the lock).
        #expect(
            polled.sent.map { $0.0.method + " " + $0.0.url } == [
                "GET https://api.github.com/repos/acme/shop/actions/runs/9",
                "POST https://api.github.com/repos/acme/shop/actions/workflows/d.yml/dispatches",
            ])
        #expect(try store.state(first) == .failed)
        #expect(try store.db.scalar("SELECT provider_seen_at FROM jobs WHERE id = ?1", [.int(first)]) == store.now + 60)
    }

    @Test func aPollThatIsRefusedIsNotedAndDoesNotChangeTheJob() throws {
        let (store, first, _) = try DeliveryTests.setUp()
        var delivery = Delivery(db: store.db, paths: store.paths, transport: ScriptedTransport([DeliveryTests.ok()]))
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        _ = try Sweeper(pollAfter: 60).queuePolls(store.db, now: store.now + 60)
        delivery = Delivery(
            db: store.db, paths: store.paths,
            transport: ScriptedTransport([
                .success(OutboundResponse(status: 404, body: Array(#"{"message":"Not Found"}"#.utf8)))
            ]))
        try delivery.deliver(Delivery.due(store.db, now: store.now + 60), now: { store.now + 60 })
        #expect(try store.state(first) == .running)
        #expect(try store.count("outbox", "kind = 'poll' AND state = 'dead'") == 1)
        #expect(
            try store.count(
                "job_events", "job_id = \(first) AND event = 'provider' AND detail LIKE '%refused the poll (404)%'")
                == 1)
    }
}
