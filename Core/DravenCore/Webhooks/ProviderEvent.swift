/// A verified provider webhook, reduced to what draven needs: which run (or job) it is about and
/// which job state it reports. Mapping per ../shared/reference/providers.md §2.
///
/// | provider | event | run key | state |
/// |---|---|---|---|
/// | GitHub | `workflow_run` | `workflow_run.id` (else `draven-job-<id>` in `display_title`) | requested/queued/in_progress/waiting → running; completed: success, neutral → succeeded; cancelled, skipped → cancelled; anything else → failed |
/// | GitHub | `workflow_job` | `workflow_job.run_id` | queued/in_progress/waiting → running; completed is recorded only (the run decides: a failed job may be retried or allowed to fail) |
/// | GitHub | `deployment_status` | `workflow_run.id` if present (else `job_id` in `deployment.payload`) | queued/pending/in_progress/waiting → running; success → succeeded; failure/error → failed; inactive recorded |
/// | GitLab | `Pipeline Hook` | `object_attributes.id` (else variable `JOB_ID`) | created/waiting_for_resource/preparing/pending/running/scheduled/manual → running; success → succeeded; failed → failed; canceled/canceling/skipped → cancelled |
/// | GitLab | `Job Hook` | `pipeline_id` | running → running; others recorded |
/// | GitLab | `Deployment Hook` | (none: carries no pipeline id) | recorded |
/// | Bitbucket Cloud | `repo:commit_status_*` | `commit_status.key` (the pipeline uuid), else `…/results/<build number>` in its URL | INPROGRESS → running; SUCCESSFUL → succeeded; FAILED → failed; STOPPED → cancelled |
/// | any | `ping`, `push`, `check_suite`, Bitbucket DC `repo:refs_changed`, … | — | irrelevant (200) |
///
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

    static func irrelevant(_ name: String) -> ProviderEvent {
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
        var state: JobState?
        switch status {
        case "completed":
            switch conclusion {
            case "success", "neutral": state = .succeeded
            case "cancelled", "skipped": state = .cancelled
            default: state = .failed
            }
        case "requested", "queued", "in_progress", "waiting", "pending": state = .running
        default: state = nil
        }
        return ProviderEvent(name: "workflow_run", relevant: true, runKey: idString(run?["id"]), jobID: jobMarker(run?["display_title"]?.stringValue),
                             state: state, detail: ["status": .string(status), "conclusion": conclusion.map(JSON.string) ?? .null,
                                                    "run_attempt": run?["run_attempt"] ?? .null],
                             url: run?["html_url"]?.stringValue, sha: commit(run?["head_sha"]))
    }

    /// A full commit sha, or nil.
    static func commit(_ v: JSON?) -> String? {
        v?.stringValue.flatMap { GitRef.isCommitSHA($0) ? $0 : nil }
    }

    static func githubWorkflowJob(_ p: JSON) -> ProviderEvent {
        let job = p["workflow_job"]
        let status = job?["status"]?.stringValue ?? ""
        let state: JobState? = ["queued", "in_progress", "waiting"].contains(status) ? .running : nil
        return ProviderEvent(name: "workflow_job", relevant: true, runKey: idString(job?["run_id"]), jobID: nil, state: state,
                             detail: ["status": .string(status), "conclusion": job?["conclusion"] ?? .null, "job": job?["name"] ?? .null],
                             url: job?["html_url"]?.stringValue, sha: commit(job?["head_sha"]))
    }

    static func githubDeploymentStatus(_ p: JSON) -> ProviderEvent {
        let status = p["deployment_status"]?["state"]?.stringValue ?? ""
        let state: JobState? = switch status {
        case "success": .succeeded
        case "failure", "error": .failed
        case "queued", "pending", "in_progress", "waiting": .running
        default: nil
        }
        var jobID: Int64?
        if let payload = p["deployment"]?["payload"] {
            let object = payload.objectValue ?? (payload.stringValue.flatMap { try? JSON.parse($0) })?.objectValue
            jobID = object?["job_id"].flatMap { $0.intValue ?? $0.stringValue.flatMap { Int64($0) } }
        }
        let url = p["deployment_status"]?["log_url"]?.stringValue ?? p["deployment_status"]?["target_url"]?.stringValue
        return ProviderEvent(name: "deployment_status", relevant: true, runKey: idString(p["workflow_run"]?["id"]), jobID: jobID,
                             state: state, detail: ["state": .string(status), "environment": p["deployment"]?["environment"] ?? .null],
                             url: url?.isEmpty == false ? url : nil, sha: commit(p["deployment"]?["sha"]))
    }

    static func gitlabPipeline(_ p: JSON) -> ProviderEvent {
        let attrs = p["object_attributes"]
        let status = attrs?["status"]?.stringValue ?? ""
        let state: JobState? = switch status {
        case "success": .succeeded
        case "failed": .failed
        case "canceled", "canceling", "skipped": .cancelled
        case "created", "waiting_for_resource", "preparing", "pending", "running", "scheduled", "manual", "waiting_for_callback": .running
        default: nil
        }
        let variables = attrs?["variables"]?.arrayValue ?? []
        let jobID = variables.first { $0["key"]?.stringValue == "JOB_ID" }?["value"]?.stringValue.flatMap { Int64($0) }
        return ProviderEvent(name: "Pipeline Hook", relevant: true, runKey: idString(attrs?["id"]), jobID: jobID, state: state,
                             detail: ["status": .string(status)], url: attrs?["url"]?.stringValue, sha: commit(attrs?["sha"]))
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
        let state: JobState? = switch status {
        case "INPROGRESS": .running
        case "SUCCESSFUL": .succeeded
        case "FAILED": .failed
        case "STOPPED": .cancelled
        default: nil
        }
        let url = cs?["url"]?.stringValue
        var runKey = cs?["key"]?.stringValue
        if let url, let r = url.firstRange(of: "/results/") {
            let digits = url[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
            if !digits.isEmpty, runKey?.hasPrefix("{") != true { runKey = "#" + digits }
        }
        return ProviderEvent(name: name, relevant: true, runKey: runKey, jobID: nil, state: state,
                             detail: ["state": .string(status), "name": cs?["name"] ?? .null], url: url,
                             sha: commit(cs?["commit"]?["hash"]))
    }
}
