import Testing

@testable import DravenCore

/// The plan engine over `Plan` values built here (no document parser involved): runs started
/// through `PlanEngine.start`, their jobs ended through the state machine (as webhooks end them,
/// so `Transition.AdvancePlan` runs in the job's transaction), time moved with `PlanEngine.sweep`.
@Suite struct PlanEngineTests {
    static let config = """
        {
          "people": {"alice": {}, "bob": {}, "carol": {}, "dana": {}, "erin": {}},
          "groups": {"leads": ["alice", "bob", "dana"], "developers": ["carol", "erin"]},
          "projects": {
            "shop": {
              "integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {
                "staging": {"refs": ["tag:v*", "branch:*"], "lease": "5m"},
                "prod": {"refs": ["tag:v*"], "lease": "5m"}
              }
            },
            "api": {
              "integration": {"provider": "github", "repo": "acme/api", "method": "workflow_dispatch",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {"staging": {"refs": ["tag:v*", "branch:*"], "lease": "5m", "lock": "reject"}}
            }
          },
          "grants": [
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read", "rollback"]},
            {"group": "developers", "project": "*", "environments": ["staging"],
             "actions": ["deploy", "read", "rollback"]}
          ]
        }
        """

    // MARK: - building plans

    static func deploy(
        _ id: String, _ project: String, _ environment: String, ref: String = "${inputs.ref}", after: [String] = [],
        condition: PlanExpression? = nil, timeout: Int64? = nil, retry: Plan.Retry? = nil, compensate: Bool = false
    ) -> Plan.Step {
        Plan.Step(
            id: id,
            action: .deploy(project: project, environment: environment, ref: template(ref), reason: nil),
            dependsOn: after, condition: condition, timeout: timeout, retry: retry,
            compensate: compensate ? .rollback : nil)
    }

    /// `${inputs.X}` or plain text.
    static func template(_ text: String) -> PlanTemplate {
        if text.hasPrefix("${inputs.") {
            let name = String(text.dropFirst(9).dropLast())
            return PlanTemplate(parts: [.path(["inputs", name])], source: text)
        }
        return PlanTemplate(parts: [.text(text)], source: text)
    }

    static func plan(_ steps: [Plan.Step], onFailure: Plan.OnFailure = .fail) -> Plan {
        Plan(
            id: "release", version: 1, inputs: [.init(name: "ref", type: .tag, pattern: "v*")], steps: steps,
            onFailure: onFailure)
    }

    // MARK: - driving a store

    struct World {
        let store: TestStore
        init() throws { store = try TestStore(config: PlanEngineTests.config) }

        func principal(_ handle: String) throws -> Principal {
            Principal(personID: try store.personID(handle), handle: handle, tokenID: 0)
        }

        @discardableResult
        func start(_ plan: Plan, ref: String = "v1.2.0", by who: String = "alice", key: String? = nil) throws -> Int64 {
            try store.db.immediate { tx in
                try PlanEngine.start(
                    tx, plan: plan, inputs: ["ref": .string(ref)], reason: "test", by: try principal(who),
                    idempotencyKey: key, now: store.now)
            }.id
        }

        func run(_ id: Int64) throws -> PlanRuns.Run { try PlanRuns.require(store.db, id: id) }

        func step(_ run: Int64, _ step: String) throws -> PlanRuns.Step {
            try #require(try self.run(run).steps.first { $0.id == step })
        }

        func job(_ run: Int64, _ step: String) throws -> Int64 { try #require(try self.step(run, step).jobID) }

        /// Ends a job as a provider would report it (through `running`, then `state`).
        func end(_ job: Int64, _ state: JobState, release: String? = nil) throws {
            try store.db.immediate { tx in
                if let release {
                    try tx.db.run("UPDATE jobs SET release_id = ?2 WHERE id = ?1", [.int(job), .text(release)])
                }
                if state != .running, try Job.require(tx.db, id: job).state == .dispatching {
                    try StateMachine.report(tx, job: job, state: .running, actor: "runner", now: store.now)
                }
                try StateMachine.report(tx, job: job, state: state, actor: "runner", now: store.now)
            }
        }

        func sweep() throws -> [String] { try PlanEngine.sweep(store.db, now: store.now) }

        func state(_ job: Int64) throws -> JobState { try store.state(job) }

        /// A deploy of `ref` to `project`/`environment` outside any plan, ended succeeded: a release
        /// for the environment to have before a run.
        func release(_ project: String, _ environment: String, ref: String) throws -> Int64 {
            let input = DeployRequest(project: project, environment: environment, ref: ref, refKind: "tag")
            let id = try store.db.immediate { tx in
                let checked = try Deploys.check(tx.db, input, by: try principal("alice"))
                return try Deploys.create(
                    tx, checked, by: try principal("alice"), idempotencyKey: nil, subject: "", now: store.now
                ).id
            }
            try end(id, .succeeded)
            return try #require(try store.db.scalar("SELECT id FROM releases WHERE job_id = ?1", [.int(id)]))
        }

        func audit(_ action: String) throws -> Int64 { try store.count("audit", "action = '\(action)'") }
    }

    // MARK: - order

    @Test func sequentialStepsAcrossTwoProjectsEachStartInTheTransactionThatEndsThePrevious() throws {
        let w = try World()
        let run = try w.start(
            Self.plan([
                Self.deploy("stage", "shop", "staging"), Self.deploy("api", "api", "staging", after: ["stage"]),
                Self.deploy("prod", "shop", "prod", after: ["api"]),
            ]))
        let stage = try w.job(run, "stage")
        #expect(try w.state(stage) == .dispatching)
        #expect(try w.step(run, "api").status == .pending)
        #expect(try Job.require(w.store.db, id: stage).ref == "refs/tags/v1.2.0")

        w.store.db.takeCommittedOutbox()
        try w.end(stage, .succeeded)
        let api = try w.job(run, "api")
        #expect(try w.state(api) == .dispatching)
        // The next step's dispatch was committed by the transaction that ended the previous step's job.
        let outbox = w.store.db.takeCommittedOutbox()
        let dispatches = try outbox.filter {
            try w.store.db.scalar(
                "SELECT 1 FROM outbox WHERE id = ?1 AND kind = 'dispatch' AND job_id = ?2",
                [
                    .int($0), .int(api),
                ]) != nil
        }
        #expect(dispatches.count == 1)

        try w.end(api, .succeeded)
        try w.end(try w.job(run, "prod"), .succeeded)
        let done = try w.run(run)
        #expect(done.status == .succeeded)
        #expect(done.steps.map(\.status) == [.succeeded, .succeeded, .succeeded])
        #expect(try w.audit("plan_run.succeeded") == 1)
    }

    @Test func stepsWithoutADependencyStartAtOnceInEnvironmentOrder() throws {
        let w = try World()
        // Declared api first; shop/staging has the smaller environment id, so its job is created first.
        let run = try w.start(
            Self.plan([Self.deploy("api", "api", "staging"), Self.deploy("shop", "shop", "staging")]))
        let (api, shop) = (try w.job(run, "api"), try w.job(run, "shop"))
        #expect(try w.state(api) == .dispatching)
        #expect(try w.state(shop) == .dispatching)
        #expect(shop < api)
        #expect(try w.run(run).status == .running)
    }

    @Test func twoRunsOverTheSameEnvironmentsQueueInOneOrderAndBothFinish() throws {
        let w = try World()
        let plan = Self.plan([Self.deploy("a", "shop", "staging"), Self.deploy("b", "shop", "prod")])
        let first = try w.start(plan)
        let second = try w.start(plan, ref: "v1.3.0")
        #expect(try w.state(try w.job(second, "a")) == .queued)
        #expect(try w.state(try w.job(second, "b")) == .queued)
        for step in ["a", "b"] { try w.end(try w.job(first, step), .succeeded) }
        // Each freed lock went to the second run's job on that environment.
        for step in ["a", "b"] {
            let job = try w.job(second, step)
            #expect(try w.state(job) == .dispatching)
            try w.end(job, .succeeded)
        }
        #expect(try w.run(first).status == .succeeded)
        #expect(try w.run(second).status == .succeeded)
    }

    // MARK: - conditions and the skip rule

    @Test func aFalseConditionSkipsAndWhatDependsOnTheSkippedStepFollowsTheRule() throws {
        let w = try World()
        let never = PlanExpression.compare(.equal, .path(["inputs", "ref"]), .literal(.string("v0")))
        let readsIt = PlanExpression.compare(
            .equal, .path(["steps", "optional", "result"]), .literal(.string("skipped")))
        let run = try w.start(
            Self.plan([
                Self.deploy("optional", "shop", "staging", condition: never),
                Self.deploy("blind", "api", "staging", after: ["optional"]),
                Self.deploy("reader", "shop", "prod", after: ["optional"], condition: readsIt),
            ]))
        let r = try w.run(run)
        #expect(r.steps.map(\.status) == [.skipped, .skipped, .running])
        #expect(r.steps[0].reason == "its condition is false: inputs.ref == 'v0'")
        #expect(r.steps[1].reason == "optional was skipped")
        #expect(try w.store.count("jobs") == 1)
        try w.end(try w.job(run, "reader"), .succeeded)
        #expect(try w.run(run).status == .succeeded)
    }

    // MARK: - failures

    @Test func aRefusalAtStartFailsTheStepWithCauseRefusedNeverRetriedAndLeavesNoJob() throws {
        let w = try World()
        let retry = Plan.Retry(maxAttempts: 3, backoff: .fixed, initial: 30, max: 30, on: Plan.Cause.allCases)
        // prod takes tags only: a branch is refused by policy.
        let run = try w.start(Self.plan([Self.deploy("prod", "shop", "prod", ref: "refs/heads/main", retry: retry)]))
        let step = try w.step(run, "prod")
        #expect(step.status == .failed)
        #expect(step.cause == "refused")
        #expect(step.reason == "prod accepts only tag v*; branch main does not match")
        #expect(step.jobID == nil)
        #expect(try w.store.count("jobs") == 0)
        #expect(try w.store.count("plan_run_environments") == 0)
        #expect(try w.run(run).status == .failed)
    }

    @Test func aBusyEnvironmentWhosePolicyRejectsRefusesTheStepAndTheJobItCreatedIsUndone() throws {
        let w = try World()
        // api/staging's policy is `lock = "reject"`; a deploy outside the plan holds its lock.
        let holder = try w.store.db.immediate { tx in
            let input = DeployRequest(project: "api", environment: "staging", ref: "main", refKind: "branch")
            let checked = try Deploys.check(tx.db, input, by: try w.principal("alice"))
            return try Deploys.create(
                tx, checked, by: try w.principal("alice"), idempotencyKey: nil, subject: "", now: w.store.now
            ).id
        }
        let before = try StoreSnapshot(w.store.db)
        let run = try w.start(Self.plan([Self.deploy("api", "api", "staging")]))
        let step = try w.step(run, "api")
        #expect(step.cause == "refused")
        #expect(step.reason == "staging is locked by job \(holder) and its policy is to reject, not queue")
        let after = try StoreSnapshot(w.store.db)
        // The job the step created before its start was refused is gone with everything it wrote.
        #expect(after["jobs"] == before["jobs"])
        #expect(after["job_events"] == before["job_events"])
        #expect(after["outbox"] == before["outbox"])
        #expect(after["plan_run_environments"] == before["plan_run_environments"])
        #expect(try w.state(holder) == .dispatching)
    }

    @Test func theEstimateAddsEarlierRunsStepDurationsAlongTheDependencies() throws {
        let w = try World()
        let plan = Self.plan([
            Self.deploy("a", "shop", "staging"), Plan.Step(id: "soak", action: .wait(seconds: 600), dependsOn: ["a"]),
            Self.deploy("b", "shop", "prod", after: ["soak"]),
        ])
        let first = try w.start(plan)
        w.store.now += 100
        try w.end(try w.job(first, "a"), .succeeded)
        w.store.now += 600
        _ = try w.sweep()
        w.store.now += 50
        try w.end(try w.job(first, "b"), .succeeded)
        #expect(try w.run(first).status == .succeeded)

        let second = try w.start(plan)
        let means = try PlanRuns.meanDurations(w.store.db, plan: "release")
        #expect(means["a"] == 100 && means["b"] == 50)
        let run = try w.run(second)
        #expect(run.estimate(means: means, now: w.store.now) == w.store.now + 100 + 600 + 50)
        let json = run.json(votes: [:], means: means, now: w.store.now)
        #expect(json["estimated_completion"] == .string(Clock.rfc3339(w.store.now + 750)))
        #expect(json["current_steps"] == ["a"])
        #expect(json["progress"] == .double(0))
    }

    @Test func aTimedOutStepIsCancelledAndRetriedWithBackoff() throws {
        let w = try World()
        let retry = Plan.Retry(maxAttempts: 3, backoff: .exponential, initial: 30, max: 600, on: [.timedOut])
        let run = try w.start(Self.plan([Self.deploy("stage", "shop", "staging", timeout: 60, retry: retry)]))
        let first = try w.job(run, "stage")
        w.store.now += 59
        #expect(try w.sweep().isEmpty)
        w.store.now += 1
        #expect(try w.sweep() == ["run \(run) step stage timed out"])
        #expect(try w.state(first) == .cancelled)
        var step = try w.step(run, "stage")
        #expect(step.status == .retrying)
        #expect(step.cause == "timed_out")
        #expect(step.dueAt == w.store.now + 30)

        w.store.now += 30
        #expect(try w.sweep() == ["run \(run) step stage retried (attempt 2)"])
        let second = try w.job(run, "stage")
        #expect(second != first)
        #expect(try w.state(second) == .dispatching)
        // The second timeout waits twice as long.
        w.store.now += 60
        _ = try w.sweep()
        #expect(try w.step(run, "stage").dueAt == w.store.now + 60)
        w.store.now += 60
        _ = try w.sweep()
        try w.end(try w.job(run, "stage"), .succeeded)
        step = try w.step(run, "stage")
        #expect(step.status == .succeeded)
        #expect(step.attempts == 3)
        #expect(try w.run(run).status == .succeeded)
    }

    @Test func aCauseNotListedFailsForGood() throws {
        let w = try World()
        let retry = Plan.Retry(maxAttempts: 3, backoff: .fixed, initial: 30, max: 30, on: [.timedOut])
        let run = try w.start(Self.plan([Self.deploy("stage", "shop", "staging", retry: retry)]))
        try w.end(try w.job(run, "stage"), .failed)
        let step = try w.step(run, "stage")
        #expect(step.status == .failed)
        #expect(step.cause == "failed")
        #expect(try w.run(run).status == .failed)
        #expect(try w.run(run).detail["failed_step"] == "stage")
    }

    @Test func pauseThenRetryOnlyTheFailedStep() throws {
        let w = try World()
        let run = try w.start(
            Self.plan(
                [Self.deploy("stage", "shop", "staging"), Self.deploy("api", "api", "staging", after: ["stage"])],
                onFailure: .pause))
        let stage = try w.job(run, "stage")
        try w.end(stage, .succeeded)
        try w.end(try w.job(run, "api"), .failed)
        #expect(try w.run(run).status == .paused)

        // A step that succeeded is not one to retry.
        #expect(throws: DravenError.self) {
            try w.store.db.immediate { tx in
                try PlanEngine.retry(tx, run: run, step: "stage", by: try w.principal("alice"), now: w.store.now)
            }
        }
        try w.store.db.immediate { tx in
            try PlanEngine.retry(tx, run: run, step: "api", by: try w.principal("alice"), now: w.store.now)
        }
        #expect(try w.run(run).status == .running)
        #expect(try w.job(run, "stage") == stage)
        #expect(try w.store.count("jobs", "project_id = (SELECT id FROM projects WHERE name = 'shop')") == 1)
        try w.end(try w.job(run, "api"), .succeeded)
        let done = try w.run(run)
        #expect(done.status == .succeeded)
        #expect(done.steps.map(\.attempts) == [1, 2])
    }

    // MARK: - compensation

    @Test func compensationUndoesNewestFirstToTheReleaseBeforeTheRunSkippingWhatChangedNothing() throws {
        let w = try World()
        let shopBefore = try w.release("shop", "staging", ref: "v1.0.0")
        let apiBefore = try w.release("api", "staging", ref: "v1.0.0")
        let run = try w.start(
            Self.plan(
                [
                    Self.deploy("shop1", "shop", "staging", compensate: true),
                    Self.deploy("api", "api", "staging", after: ["shop1"], compensate: true),
                    Self.deploy("shop2", "shop", "staging", ref: "refs/tags/v1.2.1", after: ["api"], compensate: true),
                    Self.deploy("prod", "shop", "prod", after: ["shop2"]),
                ], onFailure: .compensate))
        for step in ["shop1", "api", "shop2"] {
            try w.end(try w.job(run, step), .succeeded)
            w.store.now += 10
        }
        try w.end(try w.job(run, "prod"), .failed)
        #expect(try w.run(run).status == .compensating)

        // Newest first: shop2 rolls shop/staging back to the release before the run (not to shop1's).
        let shop2 = try w.step(run, "shop2")
        #expect(shop2.compensation == .running)
        let back = try Job.require(w.store.db, id: try #require(shop2.compensationJob))
        #expect(back.kind == .rollback)
        #expect(back.toRelease == shopBefore)
        try w.end(back.id, .succeeded)

        let api = try w.step(run, "api")
        #expect(api.compensation == .running)
        let apiBack = try Job.require(w.store.db, id: try #require(api.compensationJob))
        #expect(apiBack.toRelease == apiBefore)
        try w.end(apiBack.id, .succeeded)

        // shop1's environment already has the release from before the run: nothing to undo.
        let done = try w.run(run)
        #expect(done.steps.first { $0.id == "shop1" }?.compensation == .unchanged)
        #expect(done.status == .compensated)
        #expect(try w.store.count("jobs", "kind = 'rollback'") == 2)
        #expect(try w.audit("plan_step.compensation_skipped") == 1)
    }

    @Test func aCompensationThatFailsEndsTheRunNamingWhatIsLeft() throws {
        let w = try World()
        _ = try w.release("shop", "staging", ref: "v1.0.0")
        _ = try w.release("api", "staging", ref: "v1.0.0")
        let run = try w.start(
            Self.plan(
                [
                    Self.deploy("shop", "shop", "staging", compensate: true),
                    Self.deploy("api", "api", "staging", after: ["shop"], compensate: true),
                    Self.deploy("prod", "shop", "prod", after: ["api"]),
                ], onFailure: .compensate))
        try w.end(try w.job(run, "shop"), .succeeded)
        w.store.now += 1
        try w.end(try w.job(run, "api"), .succeeded)
        try w.end(try w.job(run, "prod"), .failed)
        try w.end(try #require(try w.step(run, "api").compensationJob), .failed)
        let done = try w.run(run)
        #expect(done.status == .compensationFailed)
        #expect(done.detail["compensation_left"] == ["shop", "api"])
        #expect(try w.store.count("jobs", "kind = 'rollback'") == 1)
    }

    // MARK: - approvals, waits, checks, notify

    @Test func anApprovalStepNeedsTwoDistinctApproversFromItsGroupsNotTheStarter() throws {
        let w = try World()
        let run = try w.start(
            Self.plan([
                Plan.Step(id: "approve", action: .approval(approvals: 2, groups: ["leads"])),
                Self.deploy("stage", "shop", "staging", after: ["approve"]),
            ]), by: "carol")
        func vote(_ who: String, approve: Bool = true) throws -> (approvals: Int, required: Int) {
            try w.store.db.immediate { tx in
                try PlanEngine.vote(
                    tx, run: run, step: "approve", by: try w.principal(who), approve: approve, comment: "",
                    now: w.store.now)
            }
        }
        let before = try StoreSnapshot(w.store.db)
        for refused in ["carol", "erin"] {
            #expect(throws: DravenError.self) { try vote(refused) }
        }
        #expect(try StoreSnapshot(w.store.db) == before)
        #expect(try vote("alice") == (1, 2))
        #expect(throws: DravenError.self) { try vote("alice") }
        #expect(try w.step(run, "approve").status == .running)
        #expect(try w.store.count("jobs") == 0)
        #expect(try vote("bob") == (2, 2))
        #expect(try w.step(run, "approve").outputs["approvers"] == ["alice", "bob"])
        #expect(try w.state(try w.job(run, "stage")) == .dispatching)
    }

    @Test func aRejectionFailsTheApprovalStep() throws {
        let w = try World()
        let run = try w.start(Self.plan([Plan.Step(id: "ok", action: .approval(approvals: 1, groups: []))]))
        try w.store.db.immediate { tx in
            _ = try PlanEngine.vote(
                tx, run: run, step: "ok", by: try w.principal("bob"), approve: false, comment: "not today",
                now: w.store.now)
        }
        let step = try w.step(run, "ok")
        #expect(step.status == .failed)
        #expect(step.reason == "rejected by bob: not today")
    }

    @Test func aWaitEndsWhenSweepFindsItsTimeCame() throws {
        let w = try World()
        let run = try w.start(
            Self.plan([
                Plan.Step(id: "soak", action: .wait(seconds: 600)),
                Self.deploy("s", "shop", "staging", after: ["soak"]),
            ]))
        w.store.now += 599
        #expect(try w.sweep().isEmpty)
        w.store.now += 1
        #expect(try w.sweep() == ["run \(run) step soak waited"])
        #expect(try w.state(try w.job(run, "s")) == .dispatching)
        #expect(try w.sweep().isEmpty)
    }

    @Test func aCheckSucceedsAfterExpectedAnswersForItsPeriodAndFailsAtItsTimeout() throws {
        let w = try World()
        let check = Plan.Check(urlSecret: "health", expectStatus: 200, every: 30, forSeconds: 60)
        let run = try w.start(
            Self.plan([
                Plan.Step(id: "health", action: .check(check), timeout: 300),
                Plan.Step(id: "bad", action: .check(check), timeout: 100),
            ]), key: nil)
        #expect(try w.store.count("outbox", "kind = 'check'") == 2)
        #expect(try w.store.count("outbox", "kind = 'check' AND payload LIKE '%http%'") == 0)
        func answer(_ step: String, _ status: Int?) throws {
            try w.store.db.immediate { tx in
                try PlanEngine.checkAnswered(tx, run: run, step: step, status: status, error: nil, now: w.store.now)
            }
        }
        try answer("health", 200)
        try answer("bad", 503)
        #expect(try w.step(run, "health").dueAt == w.store.now + 30)
        w.store.now += 30
        #expect(try w.sweep().sorted() == ["run \(run) step bad checking", "run \(run) step health checking"])
        try answer("health", 200)
        w.store.now += 30
        _ = try w.sweep()
        try answer("health", 200)
        #expect(try w.step(run, "health").status == .succeeded)
        w.store.now += 40
        #expect(try w.sweep() == ["run \(run) step bad timed out"])
        let bad = try w.step(run, "bad")
        #expect(bad.status == .failed)
        #expect(bad.cause == "check_failed")
    }

    @Test func theDelivererSendsTheCheckWithTheSecretURLAndRecordsTheAnswerInItsTransaction() throws {
        let w = try World()
        let paths = SecretsPaths(w.store.paths)
        try SecretsAdmin.initialize(paths, db: w.store.db, actor: "t", now: w.store.now)
        try SecretsAdmin.update(paths, db: w.store.db, actor: "t", now: w.store.now) { d in
            let url = SecretBytes(copying: Array("https://h.example/health?token=sekrit".utf8), label: "h")
            return (try d.set("health", kind: .token, value: url), ["health"])
        }
        let check = Plan.Check(urlSecret: "health", expectStatus: 200, every: 30, forSeconds: 0)
        let run = try w.start(
            Self.plan([Plan.Step(id: "h", action: .check(check)), Self.deploy("s", "shop", "staging", after: ["h"])]))
        let transport = ScriptedTransport([
            .failure(TransportError(message: "Failed to connect to h.example port 443", retryable: true)),
            .success(OutboundResponse(status: 200, body: [])),
        ])
        var delivery = Delivery(db: w.store.db, paths: w.store.paths, transport: transport)
        try delivery.deliver(Delivery.due(w.store.db, now: w.store.now), now: { w.store.now })
        #expect(transport.sent.count == 1)
        #expect(transport.sent[0].0.method == "GET")
        #expect(transport.sent[0].1 == "https://h.example/health?token=sekrit")
        #expect(try w.step(run, "h").reason == "no answer (the request failed)")
        #expect(try w.store.count("outbox", "payload LIKE '%h.example%' OR last_error LIKE '%h.example%'") == 0)
        #expect(try w.store.count("plan_steps", "reason LIKE '%h.example%'") == 0)
        w.store.now += 30
        _ = try w.sweep()
        try delivery.deliver(Delivery.due(w.store.db, now: w.store.now), now: { w.store.now })
        #expect(try w.step(run, "h").status == .succeeded)
        // The deploy that the check's answer started had its dispatch handled by the same deliverer
        // (refused before sending: this store's integration names no token).
        let job = try w.job(run, "s")
        #expect(transport.sent.count == 2)
        #expect(try w.store.count("outbox", "kind = 'dispatch' AND job_id = \(job) AND state = 'dead'") == 1)
        #expect(try w.state(job) == .failed)
    }

    @Test func aNotifyStepEnqueuesTheProjectsMessagesAndADiagnosticStepIsAJob() throws {
        let w = try World()
        try w.store.apply(
            Self.config.replacingOccurrences(
                #""integration": {"provider": "github", "repo": "acme/shop""#,
                #""notify": {"slack_webhook_secret": "shop-slack"}, "#
                    + #""integration": {"provider": "github", "repo": "acme/shop""#))
        _ = try w.release("shop", "prod", ref: "v1.0.0")
        let message = PlanTemplate(
            parts: [.text("shipping "), .path(["inputs", "ref"])], source: "shipping ${inputs.ref}")
        let run = try w.start(
            Self.plan([
                Plan.Step(id: "tell", action: .notify(project: "shop", message: message)),
                Plan.Step(id: "look", action: .diagnostic(project: "shop", environment: "prod", ref: nil)),
            ]))
        #expect(try w.step(run, "tell").status == .succeeded)
        let payload = try #require(
            try w.store.db.first("SELECT payload FROM outbox WHERE kind = 'notify' ORDER BY id DESC LIMIT 1") {
                $0.text(0)
            })
        #expect(try JSON.parse(payload)["text"] == "draven: shipping v1.2.0")
        let look = try Job.require(w.store.db, id: try w.job(run, "look"))
        #expect(look.kind == .diagnostic)
        #expect(look.ref == "refs/tags/v1.0.0")
        try w.end(look.id, .succeeded)
        #expect(try w.run(run).status == .succeeded)
    }

    // MARK: - runs

    @Test func cancellingARunCancelsItsJobsAndEndsItsSteps() throws {
        let w = try World()
        let run = try w.start(
            Self.plan([Self.deploy("a", "shop", "staging"), Self.deploy("b", "shop", "prod", after: ["a"])]))
        let a = try w.job(run, "a")
        try w.store.db.immediate { tx in
            try PlanEngine.cancel(tx, run: run, by: try w.principal("alice"), reason: "wrong tag", now: w.store.now)
        }
        #expect(try w.state(a) == .cancelled)
        let r = try w.run(run)
        #expect(r.status == .cancelled)
        #expect(r.steps.map(\.status) == [.cancelled, .cancelled])
        #expect(throws: DravenError.self) {
            try w.store.db.immediate { tx in
                try PlanEngine.cancel(tx, run: run, by: try w.principal("alice"), reason: "", now: w.store.now)
            }
        }
    }

    @Test func metricsCountRunsFailuresAndDurations() throws {
        let w = try World()
        let ok = try w.start(Self.plan([Self.deploy("a", "shop", "staging")]))
        let bad = try w.start(Self.plan([Self.deploy("b", "api", "staging")]))
        _ = try w.start(Self.plan([Plan.Step(id: "gate", action: .approval(approvals: 1, groups: []))]))
        w.store.now += 120
        try w.end(try w.job(ok, "a"), .succeeded)
        try w.end(try w.job(bad, "b"), .failed)
        let text = try Metrics.render(w.store.db)
        for line in [
            "draven_plan_runs_active 1", #"draven_plan_runs_completed_total{result="succeeded"} 1"#,
            #"draven_plan_runs_completed_total{result="failed"} 1"#,
            #"draven_plan_step_failures_total{cause="failed"} 1"#,
            #"draven_plan_run_duration_seconds_bucket{le="60"} 0"#,
            #"draven_plan_run_duration_seconds_bucket{le="300"} 2"#,
            "draven_plan_run_duration_seconds_sum 240", "draven_plan_step_duration_seconds_count 1",
        ] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
    }

    @Test func inputsAreCheckedAgainstTheirTypesPatternsAndDefaults() throws {
        let plan = Plan(
            id: "p", version: 1,
            inputs: [
                .init(name: "ref", type: .tag, pattern: "v*"), .init(name: "note", type: .string, defaultValue: "-"),
            ],
            steps: [])
        #expect(try PlanEngine.checkInputs(plan, ["ref": "refs/tags/v1"]) == ["ref": "v1", "note": "-"])
        let cases: [(JSONObject, String)] = [
            ([:], "/inputs/ref"), (["ref": "x1"], "/inputs/ref"), (["ref": 3], "/inputs/ref"),
            (["ref": "v1", "other": "y"], "/inputs/other"),
        ]
        for (given, pointer) in cases {
            let error = #expect(throws: DravenError.self) { try PlanEngine.checkInputs(plan, given) }
            guard case .invalidField(let got, _)? = error else {
                Issue.record("not invalidField")
                continue
            }
            #expect(got == pointer)
        }
    }

    @Test func aRepeatedStartWithTheSameKeyAnswersTheSameRun() throws {
        let w = try World()
        let plan = Self.plan([Self.deploy("a", "shop", "staging")])
        let first = try w.start(plan, key: "k1")
        #expect(try w.start(plan, key: "k1") == first)
        #expect(throws: DravenError.self) { try w.start(plan, ref: "v9.9.9", key: "k1") }
        #expect(try w.store.count("plan_runs") == 1)
    }

    @Test func theSnapshotOfAPlanReadsBackEqual() throws {
        let plan = Plan(
            id: "release", version: 3, description: "d",
            inputs: [.init(name: "ref", type: .tag, pattern: "v*", defaultValue: "v1")],
            steps: [
                Self.deploy(
                    "stage", "shop", "staging", timeout: 1800,
                    retry: .init(maxAttempts: 3, backoff: .exponential, initial: 30, max: 600, on: [.timedOut]),
                    compensate: true),
                Plan.Step(id: "soak", action: .wait(seconds: 600), dependsOn: ["stage"]),
                Plan.Step(id: "h", action: .check(.init(urlSecret: "s", expectStatus: 204, every: 5, forSeconds: 9))),
                Plan.Step(
                    id: "ok", action: .approval(approvals: 2, groups: ["leads"]),
                    condition: .and(
                        .not(.compare(.lessOrEqual, .path(["steps", "h", "attempts"]), .literal(.int(2)))),
                        .or(.literal(.bool(true)), .literal(.null)))),
                Plan.Step(id: "n", action: .notify(project: "shop", message: Self.template("hi"))),
                Plan.Step(id: "d", action: .diagnostic(project: "shop", environment: "prod", ref: nil)),
            ], onFailure: .compensate)
        #expect(try Plan(snapshot: try JSON.parse(plan.snapshot.serialized())) == plan)
    }
}
