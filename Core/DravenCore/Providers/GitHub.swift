/// GitHub (github.com and Enterprise Server): its webhooks and the Actions API calls draven makes
/// (../shared/reference/providers.md §1.2, §2.1, §3.1).
///
/// - Verification: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`.
/// - Headers: event `X-GitHub-Event`; delivery id `X-GitHub-Delivery` (not signed).
/// - Events: `workflow_run`, `workflow_job`, `deployment_status` (mapped as `ProviderEvent`'s table
///   says); pushes: `push` (`ref`, `after`, `deleted`).
/// - Calls: `POST /repos/{repo}/actions/workflows/{workflow}/dispatches` with the job as inputs and
///   `return_run_details` (sent again without it to versions that refuse it); poll
///   `GET /repos/{repo}/actions/runs/{id}`, cancel `POST …/runs/{id}/cancel`.
struct GitHub: CIProvider {
    var hookRoute: String { "github" }
    var eventHeader: String { "x-github-event" }
    var deliveryHeaders: [String] { ["x-github-delivery"] }

    func repository(in json: [UInt8]) -> String? { JSON.string(at: ["repository", "full_name"], in: json) }

    func verify(_ request: Request, secret: SecretBytes) throws {
        try HubSignature.verify(request, header: "X-Hub-Signature-256", secret: secret)
    }

    func parse(event name: String, payload: JSON) -> ProviderEvent {
        switch name {
        case "workflow_run": Self.workflowRun(payload)
        case "workflow_job": Self.workflowJob(payload)
        case "deployment_status": Self.deploymentStatus(payload)
        default: .irrelevant(name)
        }
    }

    func isPush(event name: String) -> Bool { name == "push" }

    func pushMoves(_ json: [UInt8]) -> [PushEvent.Move] { PushEvent.singleRef(json) }

    // Events

    /// `workflow_run` status and conclusion (and the run the API returns for a poll).
    static func run(status: String, conclusion: String?) -> ProviderEvent.Reading {
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

    static func workflowRun(_ p: JSON) -> ProviderEvent {
        let run = p["workflow_run"]
        let status = run?["status"]?.stringValue ?? ""
        let conclusion = run?["conclusion"]?.stringValue
        let reading = Self.run(status: status, conclusion: conclusion)
        return ProviderEvent(
            name: "workflow_run", relevant: true, runKey: ProviderEvent.idString(run?["id"]),
            jobID: ProviderEvent.jobMarker(run?["display_title"]?.stringValue), state: reading.state,
            detail: [
                "status": .string(status), "conclusion": conclusion.map(JSON.string) ?? .null,
                "run_attempt": run?["run_attempt"] ?? .null,
            ],
            url: run?["html_url"]?.stringValue,
            sha: ProviderEvent.commit(run?["head_sha"])
        ).reading(reading)
    }

    static func workflowJob(_ p: JSON) -> ProviderEvent {
        let job = p["workflow_job"]
        let status = job?["status"]?.stringValue ?? ""
        let reading: ProviderEvent.Reading =
            switch status {
            case "queued", "in_progress": .running
            case "waiting": .waiting("a job of the run waits for a deployment protection rule or a reviewer in GitHub")
            default: .recorded  // completed: the run decides (a failed job may be retried or allowed to fail)
            }
        return ProviderEvent(
            name: "workflow_job", relevant: true, runKey: ProviderEvent.idString(job?["run_id"]),
            jobID: nil, state: nil,
            detail: [
                "status": .string(status), "conclusion": job?["conclusion"] ?? .null,
                "job": job?["name"] ?? .null,
            ],
            url: job?["html_url"]?.stringValue,
            sha: ProviderEvent.commit(job?["head_sha"])
        ).reading(reading)
    }

    static func deploymentStatus(_ p: JSON) -> ProviderEvent {
        let status = p["deployment_status"]?["state"]?.stringValue ?? ""
        let reading: ProviderEvent.Reading =
            switch status {
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
        return ProviderEvent(
            name: "deployment_status", relevant: true,
            runKey: ProviderEvent.idString(p["workflow_run"]?["id"]), jobID: jobID, state: nil,
            detail: [
                "state": .string(status),
                "environment": p["deployment"]?["environment"] ?? .null,
            ],
            url: url?.isEmpty == false ? url : nil,
            sha: ProviderEvent.commit(p["deployment"]?["sha"])
        ).reading(reading)
    }

    // Calls

    var methods: Set<String> { ["workflow_dispatch"] }
    var needsPipelines: Bool { true }

    func dispatch(_ target: Dispatch.Target, secret: String) throws(DispatchError) -> OutboundRequest {
        try Self.dispatch(target, secret: secret, runDetails: true)
    }

    /// GitHub Enterprise versions that do not know `return_run_details` refuse it (400 or 422
    /// naming it): the dispatch is sent once more without.
    func fallback(
        _ target: Dispatch.Target, secret: String,
        after response: OutboundResponse
    ) throws(DispatchError) -> OutboundRequest? {
        guard response.status == 400 || response.status == 422 else { return nil }
        let said = String(decoding: response.body, as: UTF8.self)
        if said.contains("return_run_details") { return try Self.dispatch(target, secret: secret, runDetails: false) }
        // A workflow that declares no `traceparent` input refuses it ("Unexpected inputs provided"):
        // the deploy matters more than its trace, so it is asked again without it.
        if target.traceparent != nil, said.contains("traceparent") {
            var untraced = target
            untraced.traceparent = nil
            return try Self.dispatch(untraced, secret: secret, runDetails: true)
        }
        return nil
    }

    static func dispatch(
        _ t: Dispatch.Target, secret: String,
        runDetails: Bool
    ) throws(DispatchError) -> OutboundRequest {
        guard let workflow = t.pipeline else { throw DispatchError("no pipeline for environment \(t.environment)") }
        guard t.refKind != .sha else {
            throw DispatchError("GitHub workflow_dispatch runs on a branch or tag, not a bare sha")
        }
        var inputs: JSONObject = [
            "job_id": .string(String(t.jobID)), "env": .string(t.environment),
            "ref": .string(t.ref), "fencing_token": .string(String(t.fencingToken)),
        ]
        if let task = t.task {
            inputs["task"] = .string(task)
            // The exact commit a rollback returns to (a branch has moved on since).
            if let sha = t.sha { inputs["sha"] = .string(sha) }
        }
        if let trace = t.traceparent { inputs["traceparent"] = .string(trace) }
        var body: JSONObject = ["ref": .string(t.ref), "inputs": .object(inputs)]
        if runDetails { body["return_run_details"] = true }
        let workflows = "\(t.base("https://api.github.com"))/repos/\(t.repo)/actions/workflows"
        return OutboundRequest(
            method: "POST", url: "\(workflows)/\(Dispatch.percentEncode(workflow))/dispatches",
            headers: [
                ("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"),
                ("Content-Type", "application/json"), ("User-Agent", Dispatch.userAgent),
            ],
            body: JSON.object(body).serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "),
            secretName: secret, timeoutMS: t.timeoutMS)
    }

    func started(_ answer: JSON?, repo: String) -> Dispatch.Outcome {
        let id = answer?["workflow_run_id"].flatMap { $0.intValue.map { String($0) } ?? $0.stringValue }
        return .started(runID: id, url: answer?["html_url"]?.stringValue)
    }

    func runRequest(
        _ action: RunControl.Action, runID: String, target t: Dispatch.Target,
        secret: String
    ) throws(DispatchError) -> OutboundRequest {
        let run = "\(t.base("https://api.github.com"))/repos/\(t.repo)/actions/runs/\(Dispatch.percentEncode(runID))"
        return OutboundRequest(
            method: action == .poll ? "GET" : "POST", url: run + (action == .cancel ? "/cancel" : ""),
            headers: [
                ("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"),
                ("User-Agent", Dispatch.userAgent),
            ],
            body: [], credential: .header(name: "Authorization", prefix: "Bearer "), secretName: secret,
            timeoutMS: t.timeoutMS)
    }

    func polled(_ run: JSON) -> ProviderEvent? { Self.workflowRun(.object(["workflow_run": run])) }
}
