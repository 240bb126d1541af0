/// What jobs, approvals, locks, releases and plan runs tell the event stream: each event's name
/// (`EventCatalog`), and its facts. Called from the one place each thing happens: a job's
/// creation (`StateMachine.create`) and moves (`Transition.Publish`), a counted vote on a job
/// (`Approvals.vote`) or a plan step (`PlanEngine.vote`), a plan run's start and changes of status
/// (`PlanEngine`).
extension Events {
    /// A job is created (`job.created`).
    static func jobCreated(_ tx: Transaction, job id: Int64, actor: String, now: Int64) throws {
        try publish(tx, "job.created", now: now) {
            let job = try Job.require(tx.db, id: id)
            return draft(job, state: .pending, from: nil, actor: actor, detail: [:])
        }
    }

    /// The events of one move of a job, in this order: the job's own (`job.<state>`,
    /// `job.started`, `job.finished`, with `job.approved` first when the last approval let it go
    /// on), the lock taken or freed, the release it made (`release.deployed`, `.upgraded` or
    /// `.rolled_back`, and `environment.modified`).
    static func jobMoved(_ tx: Transaction, _ t: Transition) throws {
        let job = t.job
        let d = { (state: JobState) in draft(job, state: state, from: t.from, actor: t.actor, detail: t.detail) }
        if t.from == .awaitingApproval, t.to == .queued || t.to == .dispatching {
            try publish(tx, "job.approved", now: t.now) { d(t.to) }
        }
        switch t.to {
        case .running:
            try publish(tx, "job.started", now: t.now) {
                var draft = d(t.to)
                draft.cdevent = (
                    "pipelineRun", draft.subject,
                    ["pipelineName": .string(pipelineName(job)), "url": .string(job.runURL ?? "")]
                )
                return draft
            }
        case .succeeded, .failed, .timedOut, .cancelled:
            try publish(tx, "job.finished", now: t.now) {
                var draft = d(t.to)
                var content: JSONObject = [
                    "pipelineName": .string(pipelineName(job)), "url": .string(job.logURL ?? job.runURL ?? ""),
                    "outcome": .string(outcome(t.to)),
                ]
                if let reason = t.detail["reason"]?.stringValue { content["errors"] = .string(reason) }
                draft.cdevent = ("pipelineRun", draft.subject, content)
                return draft
            }
        default:
            try publish(tx, "job.\(t.to.rawValue)", now: t.now) { d(t.to) }
        }
        if t.to == .dispatching {
            try publish(tx, "lock.acquired", now: t.now) { d(t.to) }
        }
        if t.freedLock {
            try publish(tx, "lock.released", now: t.now) { d(t.to) }
        }
        guard t.to == .succeeded, job.kind.isRelease else { return }
        let name =
            job.kind == .rollback
            ? "release.rolled_back"
            : try Releases.previous(tx.db, environment: job.environmentID) == nil
                ? "release.deployed" : "release.upgraded"
        let environment: JSONObject = ["id": .string("\(job.project)/\(job.environment)")]
        try publish(tx, name, now: t.now) {
            var draft = d(t.to)
            draft.cdevent = (
                "service", job.project,
                ["environment": .object(environment), "artifactId": .string(artifact(job))]
            )
            return draft
        }
        try publish(tx, "environment.modified", now: t.now) {
            var draft = d(t.to)
            draft.cdevent = ("environment", "\(job.project)/\(job.environment)", ["name": .string(job.environment)])
            return draft
        }
    }

    /// A counted vote on a job (`approval.approved`, `approval.rejected`).
    static func voted(_ tx: Transaction, job: Job, approve: Bool, actor: String, detail: JSONObject, now: Int64)
        throws
    {
        try publish(tx, approve ? "approval.approved" : "approval.rejected", now: now) {
            draft(job, state: job.state, from: nil, actor: actor, detail: detail)
        }
    }

    /// A counted vote on a plan run's approval step (`approval.approved`, `approval.rejected`):
    /// the same names as a job's votes, about `plan_run/<id>`, with the step and the count so far.
    static func voted(
        _ tx: Transaction, run: PlanRuns.Run, step: String, approve: Bool, actor: String, comment: String,
        approvals: Int, required: Int, now: Int64
    ) throws {
        try publish(tx, approve ? "approval.approved" : "approval.rejected", now: now) {
            let facts: JSONObject = [
                "plan_run": [
                    "id": .int(run.id), "plan": .string(run.plan.id), "version": .int(run.plan.version),
                    "status": .string(run.status.rawValue),
                ],
                "step": .string(step), "decision": .string(approve ? "approve" : "reject"),
                "approvals": .int(Int64(approvals)), "required": .int(Int64(required)),
                "comment": .string(comment), "actor": .string(actor),
            ]
            return Draft(
                subject: "plan_run/\(run.id)", jobID: nil, planRunID: run.id, traceparent: run.traceparent,
                facts: facts)
        }
    }

    /// A plan run started (`plan_run.started`) or changed status (`plan_run.finished` when it
    /// ended, `.paused`, `.compensating`, `.resumed`).
    static func planRun(_ tx: Transaction, _ run: PlanRuns.Run, from: PlanRuns.Status?, actor: String, now: Int64)
        throws
    {
        let name: String
        var content: JSONObject = ["pipelineName": .string(run.plan.id), "url": ""]
        switch (from, run.status) {
        case (nil, _): name = "plan_run.started"
        case (_, .running): name = "plan_run.resumed"
        case (_, .paused): name = "plan_run.paused"
        case (_, .compensating): name = "plan_run.compensating"
        default:
            name = "plan_run.finished"
            content["outcome"] = .string(outcome(run.status))
            if let step = run.detail["failed_step"]?.stringValue { content["errors"] = .string("step \(step) failed") }
        }
        try publish(tx, name, now: now) {
            let subject = "plan_run/\(run.id)"
            let facts: JSONObject = [
                "plan_run": [
                    "id": .int(run.id), "plan": .string(run.plan.id), "version": .int(run.plan.version),
                    "status": .string(run.status.rawValue), "from": from.map { .string($0.rawValue) } ?? .null,
                    "started_by": .string(run.startedByHandle), "reason": .string(run.reason),
                    "inputs": .object(run.inputs), "detail": .object(run.detail),
                ],
                "actor": .string(actor),
            ]
            var draft = Draft(
                subject: subject, jobID: nil, planRunID: run.id,
                traceparent: run.traceparent, facts: facts)
            if name == "plan_run.started" || name == "plan_run.finished" {
                draft.cdevent = ("pipelineRun", subject, content)
            }
            return draft
        }
    }

    // MARK: - the facts

    /// A job's event: the job as it is after the move (`state`), who moved it and why.
    private static func draft(_ job: Job, state: JobState, from: JobState?, actor: String, detail: JSONObject)
        -> Draft
    {
        let facts: JSONObject = [
            "job": [
                "id": .int(job.id), "kind": .string(job.kind.rawValue), "project": .string(job.project),
                "environment": .string(job.environment), "ref": .string(job.ref),
                "sha": job.sha.map(JSON.string) ?? .null, "state": .string(state.rawValue),
                "from": from.map { .string($0.rawValue) } ?? .null, "requested_by": .string(job.requestedBy),
                "reason": .string(job.reason), "run_id": job.runID.map(JSON.string) ?? .null,
                "run_url": job.runURL.map(JSON.string) ?? .null, "log_url": job.logURL.map(JSON.string) ?? .null,
                "parent_job_id": job.parentJobID.map(JSON.int) ?? .null,
            ],
            "actor": .string(actor), "detail": .object(detail),
        ]
        return Draft(
            subject: "job/\(job.id)", jobID: job.id, planRunID: nil, traceparent: job.traceparent, facts: facts)
    }

    private static func pipelineName(_ job: Job) -> String {
        "\(job.kind.rawValue) \(job.project)/\(job.environment)"
    }

    /// CDEvents' `outcome` of a pipeline run that ended.
    private static func outcome(_ state: JobState) -> String {
        switch state {
        case .succeeded: "success"
        case .failed: "failure"
        case .cancelled: "cancel"
        default: "error"  // timed out: the runner went silent
        }
    }

    private static func outcome(_ status: PlanRuns.Status) -> String {
        switch status {
        case .succeeded: "success"
        case .cancelled: "cancel"
        case .compensationFailed: "error"
        default: "failure"  // failed, compensated
        }
    }

    /// The release as a package URL (CDEvents' `artifactId`): `pkg:generic/<project>@<sha or ref>`.
    private static func artifact(_ job: Job) -> String {
        let version = job.sha ?? job.ref.split(separator: "/").last.map(String.init) ?? job.ref
        return "pkg:generic/\(Dispatch.percentEncode(job.project))@\(Dispatch.percentEncode(version))"
    }
}
