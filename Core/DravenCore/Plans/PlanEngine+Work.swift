extension PlanEngine {
    /// One decision over one run in one transaction: the run is read once, changed in memory,
    /// and written back once by `finish` (only what changed), which then cancels the jobs the
    /// decision stopped. Cancelling last matters: the cancel is a job move whose
    /// `Transition.AdvancePlan` reads the run again, and must find those steps already ended.
    struct Work {
        let tx: Transaction
        var run: PlanRuns.Run
        let original: PlanRuns.Run
        let actor: String
        let now: Int64
        /// Jobs of steps this decision ended, to cancel once the run is written.
        var cancels: [(job: Int64, reason: String)] = []

        init(_ tx: Transaction, run id: Int64, actor: String, now: Int64) throws {
            self.tx = tx
            run = try PlanRuns.require(tx.db, id: id)
            original = run
            self.actor = actor
            self.now = now
        }

        /// Who the run's jobs are requested by: the person who started it.
        var starter: Principal { Principal(personID: run.startedBy, handle: run.startedByHandle, tokenID: 0) }

        func audit(_ action: String, _ detail: JSONObject, outcome: String = "ok") throws {
            try Audit.record(
                tx, at: now, actor: actor, action: action, subject: "plan_run/\(run.id)", outcome: outcome,
                detail: (["run_id": .int(run.id), "plan": .string(run.plan.id)] as JSONObject).merging(detail))
        }

        mutating func finish() throws {
            try PlanRuns.save(tx, run, from: original)
            if run.status != original.status {
                try Events.planRun(tx, run, from: original.status, actor: actor, now: now)
            }
            for (job, reason) in cancels where try Job.find(tx.db, id: job).map({ !$0.state.isTerminal }) ?? false {
                try JobControl.cancel(
                    tx, job: job, actor: actor, detail: ["by": .string(actor), "reason": .string(reason)], now: now)
            }
            cancels = []
        }

        // MARK: - the scope of conditions and templates

        /// `inputs.NAME`; `steps.ID.result` (once the step ended), `.status`, `.attempts`, `.outputs.KEY`.
        func value(_ path: [String]) -> PlanExpression.Value {
            switch path.first {
            case "inputs" where path.count == 2:
                return run.inputs[path[1]]?.stringValue.map(PlanExpression.Value.string) ?? .null
            case "steps" where path.count >= 3:
                guard let i = run.index(path[1]) else { return .null }
                let step = run.steps[i]
                switch (path[2], path.count) {
                case ("result", 3): return step.status.isEnded ? .string(step.status.rawValue) : .null
                case ("status", 3): return .string(step.status.rawValue)
                case ("attempts", 3): return .int(Int64(step.attempts))
                case ("outputs", 4):
                    switch step.outputs[path[3]] {
                    case .string(let s)?: return .string(s)
                    case .int(let n)?: return .int(n)
                    case .bool(let b)?: return .bool(b)
                    default: return .null
                    }
                default: return .null
                }
            default: return .null
            }
        }

        // MARK: - moving on

        /// Skips and starts what is ready, until nothing more is; ends the run when every step
        /// succeeded or was skipped, or pauses/fails it again when a failed step is all that is left.
        mutating func advance() throws {
            var moved = true
            while moved && run.status == .running {
                moved = false
                var ready: [(index: Int, order: Int64)] = []
                for (i, step) in run.plan.steps.enumerated() where run.steps[i].status == .pending {
                    let deps = step.dependsOn.compactMap(run.index).map { run.steps[$0] }
                    guard deps.allSatisfy({ $0.status == .succeeded || $0.status == .skipped }) else { continue }
                    let read = step.condition?.stepsNamed ?? []
                    if let dep = deps.first(where: { $0.status == .skipped && !read.contains($0.id) }) {
                        try skip(i, because: "\(dep.id) was skipped")
                        moved = true
                    } else if let condition = step.condition, !condition.evaluate(value).isTrue {
                        try skip(i, because: "its condition is false: \(condition.source)")
                        moved = true
                    } else {
                        ready.append((i, try lockOrder(step)))
                    }
                }
                for (i, _) in ready.sorted(by: { ($0.order, $0.index) < ($1.order, $1.index) }) {
                    guard run.status == .running else { break }
                    try startAttempt(i)
                    moved = true
                }
            }
            guard run.status == .running else { return }
            if run.steps.allSatisfy({ $0.status == .succeeded || $0.status == .skipped }) {
                try end(.succeeded, [:])
            } else if !run.steps.contains(where: { $0.status == .running || $0.status == .retrying }),
                let failed = run.steps.firstIndex(where: { $0.status.isFailure })
            {
                try failRun(failed)
            }
        }

        /// Steps on environments start in environment-id order (see `PlanEngine`: no deadlock);
        /// the others after them.
        func lockOrder(_ step: Plan.Step) throws -> Int64 {
            guard let (project, environment) = step.action.environment else { return .max }
            return (try? Target.find(tx.db, project: project, environment: environment))?.environmentID ?? .max
        }

        mutating func skip(_ i: Int, because reason: String) throws {
            run.steps[i].status = .skipped
            run.steps[i].reason = reason
            run.steps[i].completedAt = now
            run.progressedAt = now
            try audit("plan_step.skipped", ["step": .string(run.steps[i].id), "reason": .string(reason)])
        }

        /// Starts the step's next attempt: its job, its timer, its check, its message.
        mutating func startAttempt(_ i: Int) throws {
            let step = run.plan.steps[i]
            run.steps[i].attempts += 1
            run.steps[i].status = .running
            run.steps[i].startedAt = run.steps[i].startedAt ?? now
            run.steps[i].attemptAt = now
            run.steps[i].completedAt = nil
            run.steps[i].cause = nil
            run.steps[i].reason = ""
            run.steps[i].jobID = nil
            run.steps[i].okSince = nil
            run.steps[i].dueAt = nil
            run.steps[i].deadlineAt = step.timeout.map { now + $0 }
            run.progressedAt = now
            try audit(
                "plan_step.start",
                [
                    "step": .string(step.id), "type": .string(step.action.type),
                    "attempt": .int(Int64(run.steps[i].attempts)),
                ])
            do {
                switch step.action {
                case .deploy(let project, let environment, let ref, let reason):
                    var input = DeployRequest(
                        project: project, environment: environment, ref: ref.render(value),
                        refKind: run.plan.refKind(ref),
                        reason: reason?.render(value) ?? "plan \(run.plan.id) run \(run.id): step \(step.id)")
                    input.traceparent = run.traceparent
                    let job = try tx.savepoint { () throws -> Int64 in
                        let checked = try Deploys.check(tx.db, input, by: starter)
                        let environmentID = checked.target.environmentID
                        try PlanRuns.touch(
                            tx, run: run.id, environment: environmentID,
                            releaseBefore: try Releases.live(tx.db, environment: environmentID)?.id, now: now)
                        return try Deploys.create(
                            tx, checked, by: starter, idempotencyKey: nil, subject: "\(project)/\(environment)",
                            now: now
                        ).id
                    }
                    run.steps[i].jobID = job
                    run.steps[i].outputs["job_id"] = .int(job)
                case .diagnostic(let project, let environment, let ref):
                    let job = try tx.savepoint { try diagnostic(step, project, environment, ref) }
                    run.steps[i].jobID = job
                    run.steps[i].outputs["job_id"] = .int(job)
                case .approval(let approvals, _):
                    run.steps[i].reason = "0 of \(approvals) approvals"
                case .wait(let seconds):
                    run.steps[i].dueAt = now + seconds
                case .check(let check):
                    // Without a timeout a check gives up 10 minutes after it could first have passed.
                    run.steps[i].deadlineAt = run.steps[i].deadlineAt ?? now + check.forSeconds + 600
                    try sendCheck(i, check)
                case .notify(let project, let message):
                    try tx.savepoint {
                        try Notifications.enqueue(
                            tx, projectID: try Target.project(tx.db, project), job: nil,
                            text: "draven: " + message.render(value), subject: "[draven] plan \(run.plan.id)",
                            payload: ["run_id": .int(run.id), "step": .string(step.id)], now: now)
                    }
                    try endAttempt(i, .succeeded([:]))
                }
            } catch let error as DravenError {
                // Refused at start (policy, grant, a `reject` lock, an unknown environment): never retried.
                try endAttempt(i, .failed(cause: "refused", reason: Problem(error).detail))
            }
        }

        /// A diagnostic job on the environment (requested by the starter, who needs a `deploy`
        /// grant there), on the step's ref or the live release's.
        func diagnostic(_ step: Plan.Step, _ project: String, _ environment: String, _ ref: PlanTemplate?) throws
            -> Int64
        {
            let target = try Target.find(tx.db, project: project, environment: environment)
            try Grants.require(tx.db, starter, .deploy, project: project, environment: environment)
            let policy = try Policy.load(tx.db, environmentID: target.environmentID)
            let live = try Releases.live(tx.db, environment: target.environmentID)
            guard let text = ref?.render(value) ?? live?.ref else {
                throw DravenError.conflict(
                    "\(project)/\(environment) has no release to look at and the step names no ref")
            }
            let gitRef = try GitRef.parse(
                text, kind: ref.flatMap(run.plan.refKind) ?? live?.refKind, policyKinds: policy.kinds)
            var new = StateMachine.NewJob(
                kind: .diagnostic, projectID: target.projectID, environmentID: target.environmentID, ref: gitRef,
                sha: nil, reason: "plan \(run.plan.id) run \(run.id): step \(step.id)", requestedBy: starter.personID,
                policyVersion: policy.version)
            new.traceparent = run.traceparent
            let id = try StateMachine.create(
                tx, new, actor: starter.handle, subject: "\(project)/\(environment)", now: now)
            try StateMachine.start(tx, job: id, policy: policy, actor: starter.handle, now: now, queueWhenBusy: true)
            return id
        }

        /// The check's next request, as an outbox row for draven-deliver (the URL is a secret's value).
        mutating func sendCheck(_ i: Int, _ check: Plan.Check) throws {
            run.steps[i].dueAt = nil
            try Outbox.enqueue(
                tx, kind: .check, job: nil,
                payload: [
                    "run_id": .int(run.id), "step": .string(run.steps[i].id), "url_secret": .string(check.urlSecret),
                    "expect_status": .int(Int64(check.expectStatus)),
                ], now: now)
        }

        /// Ends the step's current attempt: it succeeded; or it failed, and is retried (its cause
        /// is in `retry.on` and attempts are left: after `Plan.Retry.delay`), or fails for good
        /// and the run goes by `on_failure`. In a run that no longer runs, the end is only recorded.
        mutating func endAttempt(_ i: Int, _ outcome: Outcome) throws {
            let step = run.plan.steps[i]
            run.steps[i].dueAt = nil
            run.steps[i].deadlineAt = nil
            run.progressedAt = now
            switch outcome {
            case .succeeded(let outputs):
                run.steps[i].status = .succeeded
                run.steps[i].completedAt = now
                run.steps[i].reason = ""
                for (k, v) in outputs.entries { run.steps[i].outputs[k] = v }
                try audit(
                    "plan_step.succeeded", ["step": .string(step.id), "attempts": .int(Int64(run.steps[i].attempts))])
            case .failed(let cause, let reason):
                run.steps[i].cause = cause
                run.steps[i].reason = reason
                let made = run.steps[i].attempts - run.steps[i].budgetFrom
                if run.status == .running, let retry = step.retry, let c = Plan.Cause(rawValue: cause),
                    retry.on.contains(c), made < retry.maxAttempts
                {
                    let delay = retry.delay(after: made)
                    run.steps[i].status = .retrying
                    run.steps[i].dueAt = now + delay
                    try audit(
                        "plan_step.retry",
                        [
                            "step": .string(step.id), "attempt": .int(Int64(run.steps[i].attempts)),
                            "cause": .string(cause), "reason": .string(reason), "in_seconds": .int(delay),
                        ], outcome: "retry")
                    return
                }
                run.steps[i].status =
                    switch cause {
                    case Plan.Cause.timedOut.rawValue: .timedOut
                    case "cancelled": .cancelled
                    default: .failed
                    }
                run.steps[i].completedAt = now
                try audit(
                    "plan_step.\(run.steps[i].status.rawValue)",
                    ["step": .string(step.id), "cause": .string(cause), "reason": .string(reason)], outcome: "failed")
                if run.status == .running { try failRun(i) }
            }
        }

        /// The run after step `i` failed for good, by `on_failure`.
        mutating func failRun(_ i: Int) throws {
            let id = run.steps[i].id
            run.detail["failed_step"] = .string(id)
            switch run.plan.onFailure {
            case .fail:
                try end(.failed, ["failed_step": .string(id)])
            case .pause:
                run.status = .paused
                try audit("plan_run.paused", ["failed_step": .string(id)])
            case .compensate:
                stopSteps(reason: "compensation started: \(id) failed", pendingToo: false)
                run.status = .compensating
                try audit("plan_run.compensating", ["failed_step": .string(id)])
                try compensateNext()
            }
        }

        /// Ends the steps still going (their jobs cancelled by `finish`), and with `pendingToo`
        /// the ones not started.
        mutating func stopSteps(reason: String, pendingToo: Bool) {
            for i in run.steps.indices {
                let status = run.steps[i].status
                guard status == .running || status == .retrying || (pendingToo && status == .pending) else { continue }
                if status == .running, let job = run.steps[i].jobID { cancels.append((job, reason)) }
                run.steps[i].status = .cancelled
                run.steps[i].cause = "cancelled"
                run.steps[i].reason = reason
                run.steps[i].completedAt = now
                run.steps[i].dueAt = nil
                run.steps[i].deadlineAt = nil
            }
        }

        mutating func end(_ status: PlanRuns.Status, _ detail: JSONObject) throws {
            run.status = status
            run.endedAt = now
            run.progressedAt = now
            for (k, v) in detail.entries { run.detail[k] = v }
            try audit("plan_run.\(status.rawValue)", detail, outcome: status == .succeeded ? "ok" : "failed")
        }

        // MARK: - timers

        /// What sweep does for step `i` when its time came; nil when it had not (or no longer has).
        mutating func timer(_ i: Int) throws -> String? {
            let row = run.steps[i]
            let step = run.plan.steps[i]
            if row.status == .retrying, let due = row.dueAt, due <= now {
                guard run.status == .running else {
                    run.steps[i].status = row.cause == Plan.Cause.timedOut.rawValue ? .timedOut : .failed
                    run.steps[i].dueAt = nil
                    run.steps[i].completedAt = now
                    return "ended (the run is \(run.status.rawValue))"
                }
                try startAttempt(i)
                return "retried (attempt \(run.steps[i].attempts))"
            }
            guard row.status == .running else { return nil }
            if let deadline = row.deadlineAt, deadline <= now {
                if let job = row.jobID { cancels.append((job, "plan step \(step.id) timed out")) }
                var cause = Plan.Cause.timedOut
                if case .check = step.action { cause = .checkFailed }
                let seconds = deadline - (row.attemptAt ?? deadline)
                let last = row.reason.isEmpty ? "" : " (last: \(row.reason))"
                try endAttempt(i, .failed(cause: cause.rawValue, reason: "timed out after \(seconds) s\(last)"))
                return "timed out"
            }
            guard let due = row.dueAt, due <= now else { return nil }
            switch step.action {
            case .wait:
                try endAttempt(i, .succeeded([:]))
                return "waited"
            case .check(let check):
                try sendCheck(i, check)
                return "checking"
            default:
                run.steps[i].dueAt = nil
                return nil
            }
        }

        // MARK: - compensation

        /// Undoes the next completed step that says `compensate`, newest first: a rollback job of
        /// its environment to the release live before the run first deployed there, only where
        /// the run changed it (else `unchanged`). Ends the run when none is left, or when one
        /// cannot be undone (`compensation_failed`, naming what is left).
        mutating func compensateNext() throws {
            let candidates = run.steps.indices.filter {
                run.steps[$0].status == .succeeded && run.steps[$0].compensation == nil
                    && run.plan.steps[$0].compensate != nil
            }.sorted { (run.steps[$0].completedAt ?? 0, $0) > (run.steps[$1].completedAt ?? 0, $1) }
            for i in candidates {
                guard let (project, environment) = run.plan.steps[i].action.environment else { continue }
                let id = run.steps[i].id
                do {
                    let target = try Target.find(tx.db, project: project, environment: environment)
                    let live = try Releases.live(tx.db, environment: target.environmentID)
                    let touched = try PlanRuns.releaseBefore(tx.db, run: run.id, environment: target.environmentID)
                    let before = try touched.flatMap { $0 }.flatMap {
                        try Releases.find(tx.db, environment: target.environmentID, id: $0)
                    }
                    let restored = try live.flatMap { try Job.find(tx.db, id: $0.jobID) }?.toRelease
                    if touched == nil || live == nil || Self.same(live, restoring: restored, before) {
                        run.steps[i].compensation = .unchanged
                        try audit("plan_step.compensation_skipped", ["step": .string(id), "reason": "changed nothing"])
                        continue
                    }
                    guard let before else {
                        throw DravenError.conflict("\(project)/\(environment) had no release before the run")
                    }
                    let job = try tx.savepoint {
                        try Rollbacks.rollBack(
                            tx, project: project, environment: environment, to: .release(before.id), by: starter,
                            reason: "compensation: plan \(run.plan.id) run \(run.id) undoes step \(id)",
                            queueWhenBusy: true, now: now)
                    }
                    run.steps[i].compensation = .running
                    run.steps[i].compensationJob = job
                    try audit(
                        "plan_step.compensate",
                        ["step": .string(id), "job_id": .int(job), "to_release": .int(before.id)])
                    return
                } catch let error as DravenError {
                    run.steps[i].compensation = .failed
                    run.steps[i].reason = "compensation refused: " + Problem(error).detail
                    try audit(
                        "plan_step.compensation_failed", ["step": .string(id), "reason": .string(run.steps[i].reason)],
                        outcome: "failed")
                    return try endCompensation()
                }
            }
            try endCompensation()
        }

        /// Whether `live` is the release the environment had before the run: the same row, a
        /// rollback to it (`restored`: the live release's job's target), or the same ref at the
        /// same known commit.
        static func same(_ live: Releases.Release?, restoring restored: Int64?, _ before: Releases.Release?) -> Bool {
            guard let live, let before else { return false }
            return live.id == before.id || restored == before.id
                || (live.ref == before.ref && live.sha != nil && live.sha == before.sha)
        }

        /// The compensation job of step `i` ended in `state`.
        mutating func compensationEnded(_ i: Int, job: Int64, state: JobState) throws {
            let id = run.steps[i].id
            if state == .succeeded {
                run.steps[i].compensation = .compensated
                try audit("plan_step.compensated", ["step": .string(id), "job_id": .int(job)])
            } else {
                run.steps[i].compensation = .failed
                run.steps[i].reason = "its rollback job \(job) \(state.rawValue)"
                try audit(
                    "plan_step.compensation_failed", ["step": .string(id), "reason": .string(run.steps[i].reason)],
                    outcome: "failed")
            }
            guard run.status == .compensating else { return }
            if state == .succeeded { try compensateNext() } else { try endCompensation() }
        }

        mutating func endCompensation() throws {
            let left = run.steps.indices.filter {
                run.plan.steps[$0].compensate != nil && run.steps[$0].status == .succeeded
                    && (run.steps[$0].compensation == nil || run.steps[$0].compensation == .failed)
            }.map { JSON.string(run.steps[$0].id) }
            if left.isEmpty {
                try end(.compensated, [:])
            } else {
                try end(.compensationFailed, ["compensation_left": .array(left)])
            }
        }
    }
}
