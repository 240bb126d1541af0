/// A verified provider webhook (or a polled run, `RunControl.event`), reduced to what draven
/// needs: which run (or job) it is about and which job state it reports. Checked against the
/// providers' documentation (../shared/reference/providers.md §2; GitHub's workflow-run
/// statuses and conclusions; GitLab's pipeline statuses; Bitbucket Pipelines' states and the
/// Atlassian KB "Differences between Bitbucket pipelines status from UI and API results").
///
/// The tables below are the overview of every provider; each provider reads its own events in its
/// file (`CIProvider.parse`, `CIProvider.polled`: Providers/GitHub.swift, GitLab.swift,
/// BitbucketCloud.swift, BitbucketDataCenter.swift).
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

    package static func irrelevant(_ name: String) -> ProviderEvent {
        ProviderEvent(name: name, relevant: false, runKey: nil, jobID: nil, state: nil, detail: [:], url: nil)
    }

    static func idString(_ v: JSON?) -> String? { v?.intValue.map { String($0) } ?? v?.stringValue }

    /// `draven-job-<digits>` anywhere in `text` (the pipeline templates put it in the run name).
    static func jobMarker(_ text: String?) -> Int64? {
        guard let text, let range = text.firstRange(of: "draven-job-") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int64(digits)
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
}
