import Testing

@testable import DravenCore

/// `/metrics`' store-kept figures: what the moves of jobs add (`Transition.CountMetrics`), that the
/// totals agree with a recount of the jobs, the commit times read from pushes, and the text format.
@Suite struct MetricsTests {
    /// Runs a job of `demo` through dispatch to `end`, `seconds` after its dispatch.
    func run(_ store: TestStore, ending end: JobState, after seconds: Int64, sha: String? = nil) throws -> Int64 {
        let id = try store.newJob()
        if let sha { try store.db.run("UPDATE jobs SET sha = ?2 WHERE id = ?1", [.int(id), .text(sha)]) }
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        try store.db.immediate { tx in
            try StateMachine.start(tx, job: id, policy: policy, actor: "test", now: store.now)
        }
        store.now += seconds
        try store.db.immediate { tx in
            try StateMachine.report(tx, job: id, state: end, actor: "test", now: store.now)
        }
        return id
    }

    func line(_ text: String, _ sample: String) -> Bool { text.contains("\n" + sample + "\n") }

    @Test func endedJobsAddToTheirEnvironmentsHistogramsAndDoraCounters() throws {
        let store = try TestStore()
        let sha = String(repeating: "c", count: 40)
        let pid = try #require(try store.db.scalar("SELECT id FROM projects WHERE name = 'shop'"))
        try store.db.immediate { tx in try Commits.record(tx, project: pid, [(sha, store.now - 7200)]) }
        _ = try run(store, ending: .succeeded, after: 45, sha: sha)  // lead time: 2 h + 45 s
        store.now += 100
        _ = try run(store, ending: .failed, after: 400)  // a failed change
        store.now += 60
        _ = try run(store, ending: .succeeded, after: 20)  // restores demo: 80 s after the failure
        let text = try Metrics.render(store.db, now: store.now)
        let demo = #"project="shop",environment="demo""#
        for sample in [
            #"draven_deploys_completed_total{\#(demo),result="succeeded"} 2"#,
            #"draven_deploys_completed_total{\#(demo),result="failed"} 1"#,
            #"draven_jobs{\#(demo),kind="deploy",state="succeeded"} 2"#,
            #"draven_deploy_duration_seconds_bucket{\#(demo),le="30"} 1"#,
            #"draven_deploy_duration_seconds_bucket{\#(demo),le="60"} 2"#,
            #"draven_deploy_duration_seconds_bucket{\#(demo),le="600"} 3"#,
            "draven_deploy_duration_seconds_sum{\(demo)} 465", "draven_lock_held_seconds_count{\(demo)} 3",
            "draven_queue_wait_seconds_count{\(demo)} 3", "draven_dora_lead_time_seconds_sum{\(demo)} 7245",
            "draven_dora_lead_time_seconds_count{\(demo)} 1", "draven_dora_time_to_restore_seconds_sum{\(demo)} 80",
            "draven_dora_deployments_total{\(demo)} 2", "draven_dora_changes_total{\(demo)} 3",
            "draven_dora_changes_failed_total{\(demo)} 1", "draven_dora_rework_deployments_total{\(demo)} 1",
            #"draven_queue_depth{project="shop",environment="prod"} 0"#,
        ] {
            #expect(line(text, sample), "\(sample)")
        }
        // The kept totals agree with a recount of the jobs themselves.
        let recount = try store.db.query(
            "SELECT kind, state, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"
        ) { "\($0.text(0)) \($0.text(1)) \($0.int(2))" }
        let kept = try JobMetrics.totals(store.db).sorted { ($0.kind, $0.state) < ($1.kind, $1.state) }
            .map { "\($0.kind) \($0.state) \($0.count)" }
        #expect(kept == recount)
        // The DORA window over the same history says the same.
        let w = try JobMetrics.window(
            store.db, environment: try store.environmentID("shop", "demo"), since: 0, until: store.now)
        #expect(w.deployments == 2 && w.changes == 3 && w.failedChanges == 1)
        #expect(w.leadTimes == [7245] && w.restores == [80] && w.releases == 2)
    }

    /// A release found bad and rolled back twice (the first rollback failed) is one failed change,
    /// in the counter and in the DORA window alike.
    @Test func aDeployRolledBackTwiceIsOneFailedChange() throws {
        let store = try TestStore()
        let deploy = try run(store, ending: .succeeded, after: 30)
        let eid = try store.environmentID("shop", "demo")
        let policy = try Policy.load(store.db, environmentID: eid)
        let pid = try #require(try store.db.scalar("SELECT id FROM projects WHERE name = 'shop'"))
        for end in [JobState.failed, .succeeded] {
            store.now += 60
            try store.db.immediate { tx in
                let id = try StateMachine.create(
                    tx,
                    .init(
                        kind: .rollback, projectID: pid, environmentID: eid,
                        ref: GitRef(kind: .branch, name: "develop"), sha: nil, reason: "bad",
                        requestedBy: try store.personID("carol"), policyVersion: policy.version, parentJobID: deploy),
                    actor: "carol", subject: "shop/demo", now: store.now)
                try StateMachine.start(tx, job: id, policy: policy, actor: "test", now: store.now)
                try StateMachine.report(tx, job: id, state: end, actor: "test", now: store.now + 10)
            }
        }
        let text = try Metrics.render(store.db, now: store.now)
        #expect(line(text, #"draven_dora_changes_failed_total{project="shop",environment="demo"} 1"#), "\(text)")
        let w = try JobMetrics.window(store.db, environment: eid, since: 0, until: store.now + 10)
        #expect(w.changes == 1 && w.failedChanges == 1)
    }

    @Test func aQueuedJobObservesItsWaitAtItsDispatch() throws {
        let store = try TestStore()
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        let (a, b) = (try store.newJob(), try store.newJob())
        try store.db.immediate { tx in
            try StateMachine.start(tx, job: a, policy: policy, actor: "test", now: store.now)
            try StateMachine.start(tx, job: b, policy: policy, actor: "test", now: store.now)
        }
        #expect(try store.state(b) == .queued)
        store.now += 90
        try store.db.immediate { tx in
            try StateMachine.report(tx, job: a, state: .succeeded, actor: "t", now: store.now)
        }
        #expect(try store.state(b) == .dispatching)
        let rows = try JobMetrics.rows(store.db).filter { $0.name == "queue_wait" }
        #expect(rows.map(\.le) == [1, 300] && rows.map(\.sum) == [0, 90])
    }

    @Test func aSettledOutboxRowIsCountedOnce() throws {
        let store = try TestStore()
        let id = try store.db.immediate { tx in try Outbox.enqueue(tx, kind: .notify, job: nil, payload: [:], now: 1) }
        try store.db.immediate { tx in
            _ = try Outbox.claim(tx, id: id, lease: 60, now: 1)
            try Outbox.settle(tx, id: id, state: .dead, error: "no", now: 2)
            try Outbox.settle(tx, id: id, state: .dead, error: "no", now: 3)
        }
        let counts = try Outbox.counts(store.db)
        #expect(counts.count == 1 && counts[0].state == "dead" && counts[0].count == 1 && counts[0].retries == 0)
    }

    @Test func commitTimesComeFromEachProvidersPush() throws {
        let sha = String(repeating: "a", count: 40)
        let github =
            #"{"ref":"refs/heads/main","after":"\#(sha)","head_commit":{"id":"\#(sha)","timestamp":"#
            + #""2016-08-12T17:23:21+02:00"}}"#
        let gitlab =
            #"{"commits":[{"id":"b","timestamp":"2016-08-12T15:23:21Z"},{"id":"\#(sha)","#
            + #""timestamp":"2016-08-12T15:23:21Z"}]}"#
        let bitbucket =
            #"{"push":{"changes":[{"new":{"target":{"hash":"\#(sha)","date":"2016-08-12T15:23:21+00:00"}}}]}}"#
        for body in [github, gitlab, bitbucket] {
            let times = Commits.times(in: Array(body.utf8), shas: [sha])
            #expect(times.count == 1 && times.first?.sha == sha && times.first?.at == 1_471_015_401, "\(body)")
        }
        #expect(Commits.times(in: Array(github.utf8), shas: ["other"]).isEmpty)
    }

    @Test func rfc3339TimesAreRead() {
        #expect(Clock.seconds(rfc3339: "1970-01-01T00:00:00Z") == 0)
        #expect(
            Clock.seconds(rfc3339: "2026-11-24T02:31:21Z") == Clock.seconds(rfc3339: "2026-11-24T03:31:21.25+01:00"))
        for t: Int64 in [0, 951_782_400, 1_800_000_000, 4_102_444_800] {
            #expect(Clock.seconds(rfc3339: Clock.rfc3339(t)) == t)
        }
        for bad in ["", "2026-11-24", "2026-13-01T00:00:00Z", "2026-11-24T02:31:21", "2026-11-24T02:31:21+0100"] {
            #expect(Clock.seconds(rfc3339: bad) == nil, "\(bad)")
        }
    }

    @Test func labelValuesAreEscaped() {
        #expect(Metrics.escape(#"a"b\c"# + "\nd") == #"a\"b\\c\nd"#)
        #expect(Metrics.escape("plain") == "plain")
    }
}
