/// A verified provider webhook (or a polled run, `RunControl.event`), reduced to what draven
/// needs: which run (or job) it is about and which job state it reports. Checked against the
/// providers' documentation (../shared/reference/providers.md §2; GitHub's workflow-run
/// statuses and conclusions; GitLab's pipeline statuses; Bitbucket Pipelines' states and the
/// Atlassian KB "Differences between Bitbucket pipelines status from UI and API results").
///
/// | provider | event | run key |
/// |---|---|---|
/// | GitHub | `workflow_run` | `workflow_run.id` (else `draven-job-<id>` in `display_title`) |
/// | GitHub | `workflow_job` | `workflow_job.run_id` |
/// | GitHub | `deployment_status` | `workflow_run.id` if present (else `job_id` in `deployment.payload`) |
/// | GitLab | `Pipeline Hook` | `object_attributes.id` (else variable `JOB_ID`) |
/// | GitLab | `Job Hook` | `pipeline_id` |
/// | GitLab | `Deployment Hook` | (none: carries no pipeline id) |
/// | Bitbucket Cloud | `repo:commit_status_*` | `commit_status.key` (pipeline uuid), else `…/results/<n>` |
/// | any | `ping`, `push`, `check_suite`, Bitbucket DC `repo:refs_changed`, … | — (irrelevant: 200) |
///
/// States. *running*: the job is (or goes) `running`. *waiting*: not an end — the run waits for
/// a person, a timer or a resource; recorded in the job's history with why (`waiting` in the
/// event's detail), and the job stays `running` with its lock (its lease still runs: only
/// heartbeats extend it). *recorded*: kept in the history, moves nothing.
///
/// | provider state | job |
/// |---|---|
/// | GitHub `workflow_run` status `requested`, `queued`, `pending`, `in_progress` | running |
/// | GitHub `workflow_run` status `waiting` (deployment protection rule, required reviewers) | waiting |
/// | GitHub `completed` + `success`, `neutral` | succeeded |
/// | GitHub `completed` + `action_required` (a run from a fork waits for approval in GitHub) | waiting |
/// | GitHub `completed` + `cancelled`, `skipped` | cancelled |
/// | GitHub `completed` + `failure`, `timed_out`, `startup_failure`, `stale`, anything else | failed |
/// | GitHub `workflow_job` `queued`, `in_progress` / `waiting` / `completed` | running / waiting / recorded |
/// | GitHub `deployment_status` `queued`, `pending`, `in_progress` / `waiting` | running / waiting |
/// | GitHub `deployment_status` `success` / `failure`, `error` / `inactive` | succeeded / failed / recorded |
/// | GitLab pipeline `created`, `pending`, `preparing`, `running` | running |
/// | GitLab pipeline `waiting_for_resource`, `manual` (a blocking manual job), `scheduled` (a delayed job) | waiting |
/// | GitLab pipeline `waiting_for_callback`, `canceling` (its end, `canceled`, is still to come) | waiting |
/// | GitLab pipeline `success` / `failed` / `canceled`, `skipped` | succeeded / failed / cancelled |
/// | GitLab `Job Hook` `running` / anything else | running / recorded (the pipeline decides) |
/// | GitLab `Deployment Hook` | recorded |
/// | Bitbucket commit status `INPROGRESS` / `SUCCESSFUL` | running / succeeded |
/// | Bitbucket commit status `FAILED` / `STOPPED` (by someone, or a system event) | failed / cancelled |
/// | Bitbucket pipeline (poll) `PENDING`, `IN_PROGRESS` | running |
/// | Bitbucket pipeline `PAUSED`, `HALTED` (as the state, or the stage of an `IN_PROGRESS` one) | waiting |
/// | Bitbucket pipeline `COMPLETED` + `SUCCESSFUL` / `STOPPED` | succeeded / cancelled |
/// | Bitbucket pipeline `COMPLETED` + `FAILED`, `ERROR`, `EXPIRED`, anything else | failed |
/// | any other or missing status | recorded |
///
/// Late, repeated or backwards events are recorded and move nothing (`StateMachine.report`).
/// The commit a run builds (`head_sha`, `deployment.sha`, GitLab `sha`, Bitbucket `commit.hash`)
/// is recorded on a job that has no sha yet, for the release history.
package struct ProviderEvent: Sendable, Equatable {
    /// The provider's event name (`workflow_run`, `Pipeline Hook`, `repo:commit_status_updated`, …).
    package var name: String
    /// Whether the event can say anything about a job.
    package var relevant: Bool
    /// The provider's run id (what the deliverer records as `jobs.run_id`).
    package var runKey: String?
    /// A draven job id carried by the run (pipeline input / variable / run name).
    package var jobID: Int64?
    /// The job state the event reports, or nil when it only informs.
    package var state: JobState?
    /// A short summary for the job's history (status, conclusion, URL).
    package var detail: JSONObject
    /// The run's page, if the event has it.
    package var url: String?
    /// The commit the run is building, if the event says (recorded on the job when it has none,
    /// so the release history and rollbacks know exactly what went out).
    package var sha: String? = nil
    /// Why the run waits, when it reports a waiting state (not an end: the job keeps running).
    package var waiting: String? = nil

    /// A provider state, as the mapping above reads it.
    package enum Reading: Equatable, Sendable {
        case running
        case waiting(String)
        case ended(JobState)
        case recorded

        var state: JobState? {
            switch self {
            case .running, .waiting: .running
            case .ended(let state): state
            case .recorded: nil
            }
        }

        var why: String? { if case .waiting(let why) = self { why } else { nil } }
    }

    /// GitHub `workflow_run` (and the run the API returns for a poll).
    package static func githubRun(status: String, conclusion: String?) -> Reading {
        switch status {
        case "requested", "queued", "pending", "in_progress": return .running
        case "waiting": return .waiting("the run waits for a deployment protection rule or a reviewer in GitHub")
        case "completed": break
        default: return .recorded
        }
        switch conclusion {
        case "success", "neutral": return .ended(.succeeded)
        case "cancelled", "skipped": return .ended(.cancelled)
        case "action_required": return .waiting("the run waits for someone to approve it in GitHub (action_required)")
        default: return .ended(.failed)  // failure, timed_out, startup_failure, stale, and any conclusion GitHub adds
        }
    }

    /// GitLab pipeline `status` (webhook `object_attributes.status`, or the API's pipeline).
    package static func gitlabPipeline(status: String) -> Reading {
        switch status {
        case "created", "pending", "preparing", "running": .running
        case "waiting_for_resource": .waiting("the pipeline waits for a resource group (waiting_for_resource)")
        case "manual": .waiting("the pipeline waits for someone to start a manual job (manual)")
        case "scheduled": .waiting("the pipeline waits for a delayed job's timer (scheduled)")
        case "waiting_for_callback": .waiting("the pipeline waits for an external callback (waiting_for_callback)")
        case "canceling": .waiting("the pipeline is being canceled (canceling)")
        case "success": .ended(.succeeded)
        case "failed": .ended(.failed)
        case "canceled", "skipped": .ended(.cancelled)
        default: .recorded
        }
    }

    /// Bitbucket commit status `state` (webhooks `repo:commit_status_*`).
    package static func bitbucketCommitStatus(_ state: String) -> Reading {
        switch state {
        case "INPROGRESS": .running
        case "SUCCESSFUL": .ended(.succeeded)
        case "FAILED": .ended(.failed)
        case "STOPPED": .ended(.cancelled)
        default: .recorded
        }
    }

    /// Bitbucket Pipelines `state.name`, its `stage.name` (while `IN_PROGRESS`) and
    /// `result.name` (once `COMPLETED`), from the pipelines API (polls).
    package static func bitbucketPipeline(state: String, stage: String?, result: String?) -> Reading {
        switch (state, stage) {
        case ("PAUSED", _), ("IN_PROGRESS", "PAUSED"):
            return .waiting("the pipeline is paused: another pipeline is deploying, or a manual step waits (PAUSED)")
        case ("HALTED", _), ("IN_PROGRESS", "HALTED"):
            return .waiting("the pipeline is halted, e.g. out of build minutes (HALTED)")
        case ("PENDING", _), ("IN_PROGRESS", _), ("RUNNING", _): return .running
        case ("COMPLETED", _): break
        default: return .recorded
        }
        switch result {
        case "SUCCESSFUL": return .ended(.succeeded)
        case "STOPPED": return .ended(.cancelled)
        default: return .ended(.failed)  // FAILED, ERROR, EXPIRED, and any result Bitbucket adds
        }
    }

    package static func irrelevant(_ name: String) -> ProviderEvent {
        ProviderEvent(name: name, relevant: false, runKey: nil, jobID: nil, state: nil, detail: [:], url: nil)
    }

    /// Whether draven reads events called `name` from `provider` at all. Others (`push`, `ping`,
    /// …) are verified, recorded for dedupe and answered 200 without their body being decoded:
    /// most of what a repository sends is of no interest, and decoding a 7 KB push costs more
    /// than everything else the function does for it.
    package static func maps(provider: String, name: String) -> Bool {
        parse(provider: provider, name: name, payload: .null).relevant
    }

    /// Reads a verified payload. `name` is the event header (`X-GitHub-Event`, `X-Gitlab-Event`, `X-Event-Key`).
    package static func parse(provider: String, name: String, payload: JSON) -> ProviderEvent {
        switch (provider, name) {
        case ("github", "workflow_run"): return githubWorkflowRun(payload)
        case ("github", "workflow_job"): return githubWorkflowJob(payload)
        case ("github", "deployment_status"): return githubDeploymentStatus(payload)
        case ("gitlab", "Pipeline Hook"): return gitlabPipeline(payload)
        case ("gitlab", "Job Hook"): return gitlabJob(payload)
        case ("gitlab", "Deployment Hook"):
            var e = irrelevant(name)
            e.relevant = true
            e.detail = ["status": payload["status"] ?? .null, "deployable_id": payload["deployable_id"] ?? .null]
            return e
        case ("bitbucket", let key) where key.hasPrefix("repo:commit_status_"): return bitbucketStatus(name, payload)
        default: return irrelevant(name)
        }
    }

    static func idString(_ v: JSON?) -> String? { v?.intValue.map { String($0) } ?? v?.stringValue }

    /// `draven-job-<digits>` anywhere in `text` (the pipeline templates put it in the run name).
    static func jobMarker(_ text: String?) -> Int64? {
        guard let text, let range = text.firstRange(of: "draven-job-") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int64(digits)
    }

    static func githubWorkflowRun(_ p: JSON) -> ProviderEvent {
        let run = p["workflow_run"]
        let status = run?["status"]?.stringValue ?? ""
        let conclusion = run?["conclusion"]?.stringValue
        let reading = githubRun(status: status, conclusion: conclusion)
        return ProviderEvent(name: "workflow_run", relevant: true, runKey: idString(run?["id"]),
                             jobID: jobMarker(run?["display_title"]?.stringValue), state: reading.state,
                             detail: ["status": .string(status), "conclusion": conclusion.map(JSON.string) ?? .null,
                                      "run_attempt": run?["run_attempt"] ?? .null],
                             url: run?["html_url"]?.stringValue, sha: commit(run?["head_sha"])).reading(reading)
    }

    /// The event with `reading`'s state, and why it waits (in its detail too) if it does.
    func reading(_ reading: Reading) -> ProviderEvent {
        var e = self
        e.state = reading.state
        e.waiting = reading.why
        if let why = reading.why { e.detail["waiting"] = .string(why) }
        return e
    }

    /// A full commit sha, or nil.
    static func commit(_ v: JSON?) -> String? {
        v?.stringValue.flatMap { GitRef.isCommitSHA($0) ? $0 : nil }
    }

    static func githubWorkflowJob(_ p: JSON) -> ProviderEvent {
        let job = p["workflow_job"]
        let status = job?["status"]?.stringValue ?? ""
        let reading: Reading = switch status {
        case "queued", "in_progress": .running
        case "waiting": .waiting("a job of the run waits for a deployment protection rule or a reviewer in GitHub")
        default: .recorded  // completed: the run decides (a failed job may be retried or allowed to fail)
        }
        return ProviderEvent(name: "workflow_job", relevant: true, runKey: idString(job?["run_id"]), jobID: nil,
                             state: nil, detail: ["status": .string(status), "conclusion": job?["conclusion"] ?? .null,
                                                  "job": job?["name"] ?? .null],
                             url: job?["html_url"]?.stringValue, sha: commit(job?["head_sha"])).reading(reading)
    }

    static func githubDeploymentStatus(_ p: JSON) -> ProviderEvent {
        let status = p["deployment_status"]?["state"]?.stringValue ?? ""
        let reading: Reading = switch status {
        case "success": .ended(.succeeded)
        case "failure", "error": .ended(.failed)
        case "queued", "pending", "in_progress": .running
        case "waiting": .waiting("the deployment waits for a protection rule or a reviewer in GitHub")
        default: .recorded  // inactive
        }
        var jobID: Int64?
        if let payload = p["deployment"]?["payload"] {
            let object = payload.objectValue ?? (payload.stringValue.flatMap { try? JSON.parse($0) })?.objectValue
            jobID = object?["job_id"].flatMap { $0.intValue ?? $0.stringValue.flatMap { Int64($0) } }
        }
        let url = p["deployment_status"]?["log_url"]?.stringValue ?? p["deployment_status"]?["target_url"]?.stringValue
        return ProviderEvent(name: "deployment_status", relevant: true, runKey: idString(p["workflow_run"]?["id"]),
                             jobID: jobID, state: nil,
                             detail: ["state": .string(status),
                                      "environment": p["deployment"]?["environment"] ?? .null],
                             url: url?.isEmpty == false ? url : nil,
                             sha: commit(p["deployment"]?["sha"])).reading(reading)
    }

    static func gitlabPipeline(_ p: JSON) -> ProviderEvent {
        let attrs = p["object_attributes"]
        let status = attrs?["status"]?.stringValue ?? ""
        let variables = attrs?["variables"]?.arrayValue ?? []
        let jobID = variables.first { $0["key"]?.stringValue == "JOB_ID" }?["value"]?.stringValue.flatMap { Int64($0) }
        return ProviderEvent(name: "Pipeline Hook", relevant: true, runKey: idString(attrs?["id"]), jobID: jobID,
                             state: nil, detail: ["status": .string(status)], url: attrs?["url"]?.stringValue,
                             sha: commit(attrs?["sha"])).reading(gitlabPipeline(status: status))
    }

    static func gitlabJob(_ p: JSON) -> ProviderEvent {
        let status = p["build_status"]?.stringValue ?? ""
        return ProviderEvent(name: "Job Hook", relevant: true, runKey: idString(p["pipeline_id"]), jobID: nil,
                             state: status == "running" ? .running : nil,
                             detail: ["build_status": .string(status), "build_name": p["build_name"] ?? .null,
                                      "failure_reason": p["build_failure_reason"] ?? .null], url: nil, sha: commit(p["sha"]))
    }

    static func bitbucketStatus(_ name: String, _ p: JSON) -> ProviderEvent {
        let cs = p["commit_status"]
        let status = cs?["state"]?.stringValue ?? ""
        let url = cs?["url"]?.stringValue
        var runKey = cs?["key"]?.stringValue
        if let url, let r = url.firstRange(of: "/results/") {
            let digits = url[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
            if !digits.isEmpty, runKey?.hasPrefix("{") != true { runKey = "#" + digits }
        }
        return ProviderEvent(name: name, relevant: true, runKey: runKey, jobID: nil, state: nil,
                             detail: ["state": .string(status), "name": cs?["name"] ?? .null], url: url,
                             sha: commit(cs?["commit"]?["hash"])).reading(bitbucketCommitStatus(status))
    }
}
