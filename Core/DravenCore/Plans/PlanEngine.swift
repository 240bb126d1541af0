/// The engine of deploy plans: starts runs, starts their ready steps, skips by condition and by
/// the skip rule (`Plan`'s doc comment), retries by cause, fails, pauses or compensates, and
/// ends runs. It never waits and never polls: each entry point is one decision inside the
/// transaction of the event that caused it —
/// - a step's job ending: `jobEnded`, run as the `Transition.AdvancePlan` effect of the move that
///   ended the job (in the webhook's, heartbeat's, vote's or sweep's transaction), so the next
///   step's dispatch is in the outbox when that transaction commits;
/// - a vote on an approval step (`vote`), a check's answer recorded by draven-deliver
///   (`checkAnswered`), a person's `retry` or `cancel`;
/// - time, and only time, from `draven sweep` (`sweep`): a wait's end, a retry's backoff, a
///   check's next request, a step's timeout.
///
/// **Why two runs never deadlock.** A run holds no lock: each deploy or diagnostic step is one
/// ordinary job, which takes its environment's lock or queues behind it (or is refused), and
/// ends — freeing the lock in the transaction that ends it — without ever waiting for a second
/// lock while it holds one. A run waits for its jobs, never while holding anything, so there is
/// no cycle of holders waiting for each other. When several steps start in one transaction they
/// start in one fixed order (environment id, then document order), so two runs over the same
/// environments queue in the same order on each.
package enum PlanEngine {
    /// How a step's attempt ended.
    package enum Outcome: Sendable, Equatable {
        case succeeded(JSONObject)
        /// `cause`: a `Plan.Cause`, or one `retry.on` cannot name (`refused`, `rejected`,
        /// `expired`, `cancelled`): those are never retried.
        case failed(cause: String, reason: String)
    }

    // MARK: - entry points

    /// Starts a run of `plan` by `principal`: the inputs are checked (`checkInputs`), then the
    /// ready steps start. With `idempotencyKey`, a repeat of the same request answers the run it
    /// started (`replayed`).
    /// - Throws: `.invalidField` (`/inputs/NAME`), `.notFound`/`.forbidden` (a `deploy` grant is
    ///   needed on every environment the plan's deploy and diagnostic steps name), `.idempotencyKeyReused`.
    package static func start(
        _ tx: Transaction, plan: Plan, inputs given: JSONObject, reason: String, by principal: Principal,
        idempotencyKey key: String?, now: Int64
    ) throws -> (id: Int64, replayed: Bool) {
        let inputs = try checkInputs(plan, given)
        try requireGrants(tx.db, plan, principal)
        let digest = Sodium.sha256Hex(
            Array(
                JSON.array([.string(plan.id), .int(plan.version), .object(inputs), .string(reason)])
                    .serializedBytes()))
        if let key, let existing = try PlanRuns.idempotent(tx.db, startedBy: principal.personID, key: key) {
            guard existing.digest == digest else { throw DravenError.idempotencyKeyReused }
            return (existing.id, true)
        }
        let id = try PlanRuns.insert(
            tx, plan: plan, inputs: inputs, reason: reason, startedBy: principal.personID, idempotencyKey: key,
            digest: digest, now: now)
        var work = try Work(tx, run: id, actor: principal.handle, now: now)
        try Events.planRun(tx, work.run, from: nil, actor: principal.handle, now: now)
        try work.audit(
            "plan_run.start",
            [
                "plan": .string(plan.id), "version": .int(plan.version), "inputs": .object(inputs),
                "reason": .string(reason),
            ])
        try work.advance()
        try work.finish()
        return (id, false)
    }

    /// The run's step whose job `t` ended records how (`Outcome`), and the run moves on; a
    /// compensation's rollback job ending moves compensation on. Any other move: nothing.
    static func jobEnded(_ tx: Transaction, _ t: Transition) throws {
        guard t.to.isTerminal else { return }
        let job = t.job.id
        if let (run, step) = try PlanRuns.step(tx.db, runningJob: job) {
            var work = try Work(tx, run: run, actor: t.actor, now: t.now)
            guard let i = work.run.index(step) else { return }
            let why = t.detail["reason"]?.stringValue.map { ": " + $0 } ?? ""
            let outcome: Outcome
            switch t.to {
            case .succeeded:
                outcome = .succeeded(
                    ["job_id": .int(job), "ref": .string(t.job.ref), "sha": t.job.sha.map(JSON.string) ?? .null])
            case .failed where t.from == .dispatching:
                outcome = .failed(
                    cause: Plan.Cause.dispatchFailed.rawValue, reason: "job \(job) was not dispatched\(why)")
            case .timedOut: outcome = .failed(cause: Plan.Cause.timedOut.rawValue, reason: "job \(job) timed out\(why)")
            default: outcome = .failed(cause: t.to.rawValue, reason: "job \(job) \(t.to.rawValue)\(why)")
            }
            try work.endAttempt(i, outcome)
            try work.advance()
            try work.finish()
        }
        if let (run, step) = try PlanRuns.step(tx.db, compensationJob: job) {
            var work = try Work(tx, run: run, actor: t.actor, now: t.now)
            guard let i = work.run.index(step) else { return }
            try work.compensationEnded(i, job: job, state: t.to)
            try work.finish()
        }
    }

    /// What `draven sweep` does for plans: every step whose time came (a wait ended, a retry's
    /// backoff passed, a check is due again, a timeout ran out), each in its own transaction that
    /// checks again under the write lock, so two sweeps never both act. Returns what it did.
    package static func sweep(_ db: Database, now: Int64) throws -> [String] {
        try PlanRuns.due(db, now: now).compactMap { (run, step) in
            try db.immediate { tx -> String? in
                var work = try Work(tx, run: run, actor: "draven sweep", now: now)
                guard let i = work.run.index(step), let what = try work.timer(i) else { return nil }
                try work.advance()
                try work.finish()
                return "run \(run) step \(step) \(what)"
            }
        }
    }

    /// A check step's answer, recorded by draven-deliver in the transaction that settles its
    /// outbox row: `status` (nil when no answer came, with `error`). A late answer (the step has
    /// ended) changes nothing.
    package static func checkAnswered(
        _ tx: Transaction, run: Int64, step: String, status: Int?, error: String?, now: Int64
    ) throws {
        var work = try Work(tx, run: run, actor: "draven-deliver", now: now)
        guard let i = work.run.index(step), work.run.steps[i].status == .running,
            case .check(let check) = work.run.plan.steps[i].action
        else { return }
        if let status, status == check.expectStatus {
            let since = work.run.steps[i].okSince ?? now
            work.run.steps[i].okSince = since
            if now - since >= check.forSeconds {
                try work.endAttempt(i, .succeeded(["status": .int(Int64(status))]))
            } else {
                work.run.steps[i].dueAt = now + check.every
                work.run.steps[i].reason = "answered \(status) since \(Clock.rfc3339(since))"
            }
        } else {
            work.run.steps[i].okSince = nil
            work.run.steps[i].dueAt = now + check.every
            work.run.steps[i].reason =
                error ?? "answered \(status.map(String.init) ?? "nothing"), expected \(check.expectStatus)"
        }
        try work.advance()
        try work.finish()
    }

    /// A vote on an approval step: `approve` or `reject`, by a person who did not start the run,
    /// from the step's groups (any person with an `approve` grant when it names none), once.
    /// The step succeeds with its `approvals`-th approval; a rejection fails it (never retried).
    /// - Returns: the approvals so far and how many the step needs.
    /// - Throws: `.notFound` (no such step), `.conflict` (not waiting for votes; voted already),
    ///   `.policyDenied` (rule `self_approval` or `approver_groups`).
    package static func vote(
        _ tx: Transaction, run: Int64, step: String, by principal: Principal, approve: Bool, comment: String,
        now: Int64
    ) throws -> (approvals: Int, required: Int) {
        var work = try Work(tx, run: run, actor: principal.handle, now: now)
        let (i, required) = try checkVote(tx.db, work.run, step: step, by: principal)
        let decision = approve ? "approve" : "reject"
        guard
            try PlanRuns.vote(
                tx, run: run, step: step, person: principal.personID, decision: decision, comment: comment, now: now)
        else { throw DravenError.conflict("\(principal.handle) has already voted on step \(step)") }
        try work.audit(
            "plan_step.vote", ["step": .string(step), "decision": .string(decision), "comment": .string(comment)])
        let approvers = try PlanRuns.votes(tx.db, run: run, step: step).filter { $0.decision == "approve" }.map(
            \.person)
        try Events.voted(
            tx, run: work.run, step: step, approve: approve, actor: principal.handle, comment: comment,
            approvals: approvers.count, required: required, now: now)
        if !approve {
            let said = comment.isEmpty ? "" : ": \(comment)"
            try work.endAttempt(i, .failed(cause: "rejected", reason: "rejected by \(principal.handle)\(said)"))
        } else if approvers.count >= required {
            try work.endAttempt(i, .succeeded(["approvers": .array(approvers.map(JSON.string))]))
        } else {
            work.run.steps[i].reason = "\(approvers.count) of \(required) approvals"
        }
        try work.advance()
        try work.finish()
        return (approvers.count, required)
    }

    /// Starts a failed step of a paused or failed run again, with a fresh retry budget; the
    /// steps that succeeded are not run again.
    /// - Throws: `.notFound`, `.forbidden` (as `start`), `.conflict` (the run or the step is not failed).
    package static func retry(_ tx: Transaction, run: Int64, step: String, by principal: Principal, now: Int64) throws {
        var work = try Work(tx, run: run, actor: principal.handle, now: now)
        let i = try checkRetry(tx.db, work.run, step: step, by: principal)
        let row = work.run.steps[i]
        work.run.steps[i].status = .pending
        work.run.steps[i].budgetFrom = row.attempts
        work.run.steps[i].completedAt = nil
        work.run.status = .running
        work.run.endedAt = nil
        work.run.detail["failed_step"] = nil
        try work.audit("plan_step.retry_requested", ["step": .string(step), "attempts": .int(Int64(row.attempts))])
        try work.advance()
        try work.finish()
    }

    /// Cancels a run that has not ended: its running steps' jobs are cancelled (through the jobs'
    /// cancel path), its other steps end `cancelled`; nothing is compensated.
    /// - Throws: `.notFound`, `.forbidden` (as `start`), `.conflict` (the run has ended).
    package static func cancel(_ tx: Transaction, run: Int64, by principal: Principal, reason: String, now: Int64)
        throws
    {
        var work = try Work(tx, run: run, actor: principal.handle, now: now)
        try checkCancel(tx.db, work.run, by: principal)
        work.stopSteps(reason: "the run was cancelled", pendingToo: true)
        try work.end(.cancelled, ["by": .string(principal.handle), "reason": .string(reason)])
        try work.finish()
    }

    // MARK: - checks

    /// What `vote` checks before it records anything: the step exists, is an approval step
    /// waiting for votes, the voter did not start the run and is one of its approvers (the
    /// console asks the same before it offers the buttons). Returns the step's index and the
    /// approvals it needs.
    /// - Throws: as `vote` (but never "voted already": only the vote itself finds that).
    package static func checkVote(_ db: Database, _ run: PlanRuns.Run, step: String, by principal: Principal) throws
        -> (index: Int, required: Int)
    {
        guard let i = run.index(step) else {
            throw DravenError.notFound(what: "plan run \(run.id) has no step \(step)")
        }
        guard case .approval(let required, let groups) = run.plan.steps[i].action else {
            throw DravenError.conflict("step \(step) is a \(run.plan.steps[i].action.type) step; it takes no votes")
        }
        guard run.status == .running, run.steps[i].status == .running else {
            throw DravenError.conflict(
                "step \(step) is not waiting for approvals (it is \(run.steps[i].status.rawValue))")
        }
        guard principal.personID != run.startedBy else {
            throw DravenError.policyDenied(
                rule: "self_approval", detail: "who started the run cannot approve its steps")
        }
        if groups.isEmpty {
            guard try !Grants.environments(db, person: principal.personID, action: .approve).isEmpty else {
                throw DravenError.policyDenied(
                    rule: "approver_groups", detail: "only people with an approve grant may vote")
            }
        } else {
            guard try Grants.isMember(db, person: principal.personID, ofAny: groups) else {
                throw DravenError.policyDenied(
                    rule: "approver_groups",
                    detail: "only members of \(groups.joined(separator: ", ")) may approve \(step)")
            }
        }
        return (i, required)
    }

    /// What `retry` checks: the grants (as `start`), then that the run is paused or failed and
    /// the step is one that failed. Returns the step's index.
    package static func checkRetry(_ db: Database, _ run: PlanRuns.Run, step: String, by principal: Principal) throws
        -> Int
    {
        try requireGrants(db, run.plan, principal)
        guard let i = run.index(step) else {
            throw DravenError.notFound(what: "plan run \(run.id) has no step \(step)")
        }
        guard run.status == .paused || run.status == .failed else {
            throw DravenError.conflict(
                "run \(run.id) is \(run.status.rawValue); only a paused or failed run retries a step")
        }
        let row = run.steps[i]
        guard row.status.isFailure else {
            throw DravenError.conflict("step \(step) is \(row.status.rawValue); only a step that failed can be retried")
        }
        return i
    }

    /// What `cancel` checks: the grants (as `start`), and that the run has not ended.
    package static func checkCancel(_ db: Database, _ run: PlanRuns.Run, by principal: Principal) throws {
        try requireGrants(db, run.plan, principal)
        guard !run.status.isEnded else {
            throw DravenError.conflict("run \(run.id) is \(run.status.rawValue); it has already ended")
        }
    }

    /// The run's inputs: each of the plan's, given or its default, checked against its type and
    /// pattern; nothing else.
    /// - Throws: `.invalidField` naming `/inputs/NAME`.
    package static func checkInputs(_ plan: Plan, _ given: JSONObject) throws -> JSONObject {
        for key in given.keys where !plan.inputs.contains(where: { $0.name == key }) {
            throw DravenError.invalidField(pointer: "/inputs/\(key)", reason: "plan \(plan.id) has no input \(key)")
        }
        var inputs = JSONObject()
        for input in plan.inputs {
            let pointer = "/inputs/\(input.name)"
            var value = input.defaultValue
            if let given = given[input.name] {
                guard let text = given.stringValue, !text.isEmpty, text.utf8.count <= 255 else {
                    throw DravenError.invalidField(pointer: pointer, reason: "must be a string of 1 to 255 bytes")
                }
                value = text
            }
            guard var value else { throw DravenError.invalidField(pointer: pointer, reason: "is required") }
            if input.type != .string {
                guard let ref = try? GitRef.parse(value, kind: input.type.rawValue, policyKinds: []),
                    ref.kind.rawValue == input.type.rawValue
                else {
                    throw DravenError.invalidField(pointer: pointer, reason: "must be a \(input.type.rawValue) name")
                }
                value = ref.name
            }
            if let pattern = input.pattern, !Policy.glob(pattern, matches: value) {
                throw DravenError.invalidField(pointer: pointer, reason: "must match \(pattern)")
            }
            inputs[input.name] = .string(value)
        }
        return inputs
    }

    /// A `deploy` grant on every environment the plan's deploy and diagnostic steps name: what
    /// starting, retrying and cancelling a run need.
    /// - Throws: `.notFound` (no such project or environment), `.forbidden`.
    package static func requireGrants(_ db: Database, _ plan: Plan, _ principal: Principal) throws {
        for step in plan.steps {
            guard let (project, environment) = step.action.environment else { continue }
            _ = try Target.find(db, project: project, environment: environment)
            try Grants.require(db, principal, .deploy, project: project, environment: environment)
        }
    }
}

extension Plan.Action {
    /// The environment a deploy or diagnostic step works on.
    package var environment: (project: String, environment: String)? {
        switch self {
        case .deploy(let project, let environment, _, _), .diagnostic(let project, let environment, _):
            (project, environment)
        default: nil
        }
    }
}
