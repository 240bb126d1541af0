import Testing

@testable import DravenCore

/// Each effect of a move (`StateMachine.effects`) run alone over a `Transition` built by hand, and
/// the rows it writes; the jobs are put in place through the state machine first.
@Suite struct TransitionEffectsTests {
    static let config = """
        {
          "chatops": {"slack": {"signing_secret": "slack-signing", "bot_token_secret": "slack-bot"}},
          "people": {"alice": {}, "bob": {}, "carol": {}},
          "groups": {"leads": ["alice", "bob"]},
          "projects": {"shop": {
            "integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                            "pipelines": {"*": "deploy.yml"}},
            "notify": {"slack_webhook_secret": "shop-slack", "teams_webhook_secret": "shop-teams",
                       "email": ["ops@example.com"], "slack_channel": "C0DEPLOYS"},
            "environments": {
              "demo": {"refs": ["branch:*"], "lease": "5m", "on_failure": ["rollback", "diagnostic"]},
              "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"]}
            }
          }},
          "grants": [{"person": "carol", "project": "*", "actions": ["deploy", "read", "rollback"]}]
        }
        """

    /// A job of `demo` (or `env`) moved along `path` by the state machine (every effect ran).
    static func job(
        _ store: TestStore, _ path: [JobState], env: String = "demo", kind: JobKind = .deploy,
        ref: GitRef = GitRef(kind: .branch, name: "main")
    ) throws -> Int64 {
        let eid = try store.environmentID("shop", env)
        let policy = try Policy.load(store.db, environmentID: eid)
        let pid = try #require(try store.db.scalar("SELECT id FROM projects WHERE name = 'shop'"))
        return try store.db.immediate { tx in
            let new = StateMachine.NewJob(
                kind: kind, projectID: pid, environmentID: eid, ref: ref, sha: nil,
                reason: "test", requestedBy: try store.personID("carol"),
                policyVersion: policy.version)
            let id = try StateMachine.create(tx, new, actor: "carol", subject: "shop/\(env)", now: store.now)
            for step in path {
                if step == .dispatching || step == .queued {
                    try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: store.now)
                } else {
                    try StateMachine.transition(tx, job: id, to: step, actor: "t", now: store.now)
                }
            }
            return id
        }
    }

    /// Runs `effect` alone over the move of `job` (as it is now) from `from` to `to`.
    @discardableResult
    static func run(
        _ effect: any Transition.Effect, _ store: TestStore, job: Int64, from: JobState, to: JobState,
        freedLock: Bool = false, at now: Int64? = nil
    ) throws -> Transition {
        try store.db.immediate { tx in
            let read = try Job.require(tx.db, id: job)
            var t = Transition(job: read, from: from, to: to, actor: "t", now: now ?? store.now)
            t.freedLock = freedLock
            try effect.apply(tx, &t)
            return t
        }
    }

    static func notifications(_ store: TestStore, after id: Int64 = 0) throws -> [JSON] {
        try store.db.query("SELECT payload FROM outbox WHERE kind = 'notify' AND id > ?1 ORDER BY id", [.int(id)]) {
            try JSON.parse($0.text(0))
        }
    }

    static func lastOutbox(_ store: TestStore) throws -> Int64 {
        try store.db.scalar("SELECT max(id) FROM outbox") ?? 0
    }

    @Test func theEffectsRunInTheDocumentedOrder() {
        #expect(
            StateMachine.effects.map { String(describing: type(of: $0)) } == [
                "RenewLease", "FreeLock", "RecordRelease", "CountMetrics", "Recover", "AdvancePlan", "StartNextQueued",
                "Notify", "UpdateApprovalMessages", "Publish",
            ])
    }

    @Test func renewLeaseRestartsTheLeaseOnlyWhenTheJobStartsRunning() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [.dispatching])
        let lease = { try store.db.scalar("SELECT lease_until FROM locks WHERE job_id = ?1", [.int(id)]) }
        #expect(try lease() == store.now + 300)
        try Self.run(Transition.RenewLease(), store, job: id, from: .dispatching, to: .failed, at: store.now + 50)
        #expect(try lease() == store.now + 300)
        try Self.run(Transition.RenewLease(), store, job: id, from: .dispatching, to: .running, at: store.now + 50)
        #expect(try lease() == store.now + 350)
    }

    @Test func freeLockFreesTheLockTheJobHeldAndSaysSo() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [.dispatching])
        let env = try store.environmentID("shop", "demo")
        let token = try #require(try Locks.holder(store.db, environment: env)).token
        #expect(try !Self.run(Transition.FreeLock(), store, job: id, from: .dispatching, to: .running).freedLock)
        #expect(try Locks.holder(store.db, environment: env)?.jobID == id)
        #expect(try Self.run(Transition.FreeLock(), store, job: id, from: .dispatching, to: .cancelled).freedLock)
        #expect(try Locks.holder(store.db, environment: env) == nil)
        #expect(try store.db.scalar("SELECT fencing_token FROM locks WHERE environment_id = ?1", [.int(env)]) == token)
        // A second time there is nothing left to free.
        #expect(try !Self.run(Transition.FreeLock(), store, job: id, from: .running, to: .failed).freedLock)
    }

    @Test func recordReleaseMakesASucceededDeployOrRollbackLive() throws {
        let store = try TestStore(config: Self.config)
        let releases = {
            try store.db.query("SELECT job_id, ref, live_from, live_until FROM releases ORDER BY id") {
                "\($0.int(0)) \($0.text(1)) \($0.int(2)) \($0.optionalInt(3).map(String.init) ?? "live")"
            }
        }
        let first = try Self.job(store, [.dispatching, .running])
        try Self.run(Transition.RecordRelease(), store, job: first, from: .running, to: .failed)
        #expect(try releases() == [])
        try Self.run(Transition.RecordRelease(), store, job: first, from: .running, to: .succeeded)
        #expect(try releases() == ["\(first) refs/heads/main \(store.now) live"])
        let rollback = try Self.job(store, [], kind: .rollback, ref: GitRef(kind: .branch, name: "old"))
        try Self.run(
            Transition.RecordRelease(), store, job: rollback, from: .running, to: .succeeded,
            at: store.now + 9)
        #expect(
            try releases() == [
                "\(first) refs/heads/main \(store.now) \(store.now + 9)",
                "\(rollback) refs/heads/old \(store.now + 9) live",
            ])
        let diagnostic = try Self.job(store, [], kind: .diagnostic)
        try Self.run(Transition.RecordRelease(), store, job: diagnostic, from: .running, to: .succeeded)
        #expect(try releases().count == 2)
    }

    @Test func recoverCreatesTheFailurePolicysJobsForADeployThatFailedWhileRunning() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [.dispatching, .running])
        let jobs = try store.count("jobs")
        for (from, to) in [(JobState.dispatching, JobState.failed), (.running, .succeeded), (.running, .cancelled)] {
            try Self.run(Transition.Recover(), store, job: id, from: from, to: to)
        }
        #expect(try store.count("jobs") == jobs)
        // No release yet: the diagnostic (first, whatever the policy's order), and a note that the
        // rollback had nothing to go to.
        try Self.run(Transition.Recover(), store, job: id, from: .running, to: .timedOut)
        #expect(try store.children(id).map { "\($0.1) \($0.2.rawValue)" } == ["diagnostic queued"])
        let reason = try store.db.first("SELECT reason FROM jobs WHERE parent_job_id = ?1", [.int(id)]) { $0.text(0) }
        #expect(reason == "diagnostic: job \(id) timed out")
        let note = try store.db.first(
            "SELECT detail FROM job_events WHERE job_id = ?1 AND event = 'recovery'",
            [.int(id)]
        ) { $0.text(0) }
        #expect(note == #"{"rollback":"skipped: the environment has no succeeded release to roll back to"}"#)
    }

    @Test func recoverRollsBackToTheLiveReleaseAndNeverRecoversARecoveryJob() throws {
        let store = try TestStore(config: Self.config)
        let good = try Self.job(store, [.dispatching, .running, .succeeded])
        let bad = try Self.job(store, [.dispatching, .running])
        try Self.run(Transition.Recover(), store, job: bad, from: .running, to: .failed)
        // The lock is still the failed job's (FreeLock did not run): both wait for it.
        #expect(try store.children(bad).map { "\($0.1) \($0.2.rawValue)" } == ["diagnostic queued", "rollback queued"])
        let target = try store.db.first(
            """
            SELECT to_release, ref FROM jobs WHERE parent_job_id = ?1 AND kind = 'rollback'
            """, [.int(bad)]
        ) { "\($0.int(0)) \($0.text(1))" }
        let release = try #require(try Releases.live(store.db, environment: try store.environmentID("shop", "demo")))
        #expect(release.jobID == good)
        #expect(target == "\(release.id) refs/heads/main")
        let rollback = try #require(try store.children(bad).last).0
        let jobs = try store.count("jobs")
        try Self.run(Transition.Recover(), store, job: rollback, from: .running, to: .failed)
        #expect(try store.count("jobs") == jobs)
    }

    @Test func startNextQueuedStartsRecoveryJobsFirstAndOnlyWhenTheLockWasFreed() throws {
        let store = try TestStore(config: Self.config)
        let env = try store.environmentID("shop", "demo")
        let holder = try Self.job(store, [.dispatching])
        let deploy = try Self.job(store, [.queued])
        let diagnostic = try Self.job(store, [.queued], kind: .diagnostic)
        try Self.run(Transition.StartNextQueued(), store, job: holder, from: .dispatching, to: .failed)
        #expect(try [deploy, diagnostic].map(store.state) == [.queued, .queued])
        // Freed, but taken again before this effect: nothing starts.
        try Self.run(Transition.StartNextQueued(), store, job: holder, from: .dispatching, to: .failed, freedLock: true)
        #expect(try [deploy, diagnostic].map(store.state) == [.queued, .queued])
        try store.db.immediate { tx in _ = try Locks.release(tx, environment: env, job: holder) }
        try Self.run(Transition.StartNextQueued(), store, job: holder, from: .dispatching, to: .failed, freedLock: true)
        #expect(try [deploy, diagnostic].map(store.state) == [.queued, .dispatching])
        #expect(try Locks.holder(store.db, environment: env)?.jobID == diagnostic)
        #expect(try store.count("outbox", "kind = 'dispatch' AND job_id = \(diagnostic)") == 1)
    }

    @Test func notifyAnnouncesAnEndedJobOnEachChannelWithItsLink() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [.dispatching, .running])
        try store.db.immediate { tx in try Job.recordRun(tx, job: id, runID: "7", url: "https://ci.example/run/7") }
        let before = try Self.lastOutbox(store)
        try Self.run(Transition.Notify(), store, job: id, from: .dispatching, to: .running)
        #expect(try Self.notifications(store, after: before) == [])
        try Self.run(Transition.Notify(), store, job: id, from: .running, to: .failed)
        let rows = try Self.notifications(store, after: before)
        let what = "deploy #\(id) of shop refs/heads/main to demo"
        let text = "draven: \(what) FAILED (asked by carol) — log: https://ci.example/run/7"
        #expect(rows.map { $0["channel"]?.stringValue } == ["slack", "teams", "email"])
        #expect(rows.map { $0["secret"]?.stringValue } == ["shop-slack", "shop-teams", nil])
        #expect(rows.allSatisfy { $0["text"]?.stringValue == text && $0["state"]?.stringValue == "failed" })
        #expect(rows.last?["subject"]?.stringValue == "[draven] \(what) FAILED (asked by carol)")
        // The runner's log, once it sent one, is the link.
        try store.db.immediate { tx in
            try Job.recordResult(tx, job: id, logURL: "https://logs.example/7", releaseID: nil)
        }
        let after = try Self.lastOutbox(store)
        try Self.run(Transition.Notify(), store, job: id, from: .running, to: .succeeded)
        #expect(
            try Self.notifications(store, after: after).first?["text"]?.stringValue
                == "draven: \(what) succeeded (asked by carol) — log: https://logs.example/7")
    }

    @Test func updateApprovalMessagesPostsTheRequestAndUpdatesItWhenTheWaitEnds() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [], env: "prod", ref: GitRef(kind: .tag, name: "v1"))
        let before = try Self.lastOutbox(store)
        try Self.run(Transition.UpdateApprovalMessages(), store, job: id, from: .pending, to: .queued)
        #expect(try Self.notifications(store, after: before) == [])
        try Self.run(Transition.UpdateApprovalMessages(), store, job: id, from: .pending, to: .awaitingApproval)
        let asked = try Self.notifications(store, after: before)
        let what = "draven: deploy #\(id) of shop refs/tags/v1 to prod (asked by carol: test)"
        #expect(asked.map { $0["channel"]?.stringValue } == [ApprovalMessages.channel, "teams"])
        #expect(asked.first?["action"]?.stringValue == "post")
        #expect(asked.first?["slack_channel"]?.stringValue == "C0DEPLOYS")
        #expect(asked.first?["text"]?.stringValue == what + " needs 2 approvals from leads")
        #expect(
            asked.last?["text"]?.stringValue
                == what + " needs 2 approvals from leads — answer with @draven approve \(id) or @draven reject \(id)")
        let mid = try Self.lastOutbox(store)
        try Self.run(Transition.UpdateApprovalMessages(), store, job: id, from: .awaitingApproval, to: .expired)
        let ended = try Self.notifications(store, after: mid)
        #expect(ended.first?["action"]?.stringValue == "update")
        let expired = what + " EXPIRED: not enough approvals within 1d"
        #expect(ended.map { $0["text"]?.stringValue } == [expired, expired])
        #expect(ended.last?["state"]?.stringValue == "expired")
    }

    @Test func moveShaGivesAnAwaitingJobTheNewShaAndRecordsIt() throws {
        let store = try TestStore(config: Self.config)
        let id = try Self.job(store, [.awaitingApproval], env: "prod", ref: GitRef(kind: .tag, name: "v1"))
        let sha = String(repeating: "a", count: 40)
        let moved = try store.db.immediate { tx in
            try StateMachine.moveSha(
                tx, job: id, sha: sha, actor: "push webhook",
                detail: ["ref": "refs/tags/v1", "delivery": "d-1"], now: store.now + 5)
        }
        #expect(moved)
        let row = try store.db.first("SELECT sha, updated_at FROM jobs WHERE id = ?1", [.int(id)]) {
            "\($0.text(0)) \($0.int(1))"
        }
        #expect(row == "\(sha) \(store.now + 5)")
        let detail = #"{"from":null,"to":"\#(sha)","ref":"refs/tags/v1","delivery":"d-1"}"#
        let events = try store.db.query(
            """
            SELECT event, actor, detail FROM job_events WHERE job_id = ?1 AND event = 'sha_changed'
            """, [.int(id)]
        ) { "\($0.text(0)) \($0.text(1)) \($0.text(2))" }
        #expect(events == ["sha_changed push webhook \(detail)"])
        let audit = try store.db.query(
            """
            SELECT actor, detail FROM audit WHERE action = 'job.sha_changed' AND subject = ?1
            """, [.text("job/\(id)")]
        ) { "\($0.text(0)) \($0.text(1))" }
        #expect(audit == ["push webhook \(detail)"])
        // The same sha again, or a job no longer waiting: nothing is written.
        let running = try Self.job(store, [.dispatching, .running])
        let eventCount = try store.count("job_events")
        let audits = try store.count("audit")
        let again = try store.db.immediate { tx in
            try [id, running].map {
                try StateMachine.moveSha(tx, job: $0, sha: sha, actor: "push webhook", detail: [:], now: store.now + 6)
            }
        }
        #expect(again == [false, false])
        #expect(try store.count("job_events") == eventCount)
        #expect(try store.count("audit") == audits)
        #expect(try store.count("jobs", "sha IS NOT NULL AND id = \(running)") == 0)
    }
}
