/// Bitbucket Cloud (bitbucket.org): its webhooks and the Pipelines API calls draven makes
/// (../shared/reference/providers.md §1.4, §2.3, §3.3).
///
/// - Verification: `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`.
/// - Headers: event `X-Event-Key`; delivery id `X-Request-UUID` (else `X-Request-Id`: the
///   `/hooks/bitbucket` route it shares with Data Center has always taken either).
/// - Events: `repo:commit_status_created`, `repo:commit_status_updated` (mapped as `ProviderEvent`'s
///   table says); pushes: `repo:push`, whose `push.changes` give each moved ref's `new` head
///   (`name`, `type` branch / tag / annotated_tag, `target.hash`; `new` is null when the ref was
///   deleted).
/// - Calls: method `custom_pipeline` (`POST /repositories/{repo}/pipelines/`, a custom pipeline on a
///   branch or tag); poll `GET /repositories/{repo}/pipelines/{uuid}`, cancel `POST …/stopPipeline`.
struct BitbucketCloud: CIProvider {
    var hookRoute: String { "bitbucket" }
    var eventHeader: String { "x-event-key" }
    var deliveryHeaders: [String] { ["x-request-uuid", "x-request-id"] }

    func repository(in json: [UInt8]) -> String? { JSON.string(at: ["repository", "full_name"], in: json) }

    func verify(_ request: Request, secret: SecretBytes) throws {
        try HubSignature.verify(request, header: "X-Hub-Signature", secret: secret)
    }

    func parse(event name: String, payload: JSON) -> ProviderEvent {
        name.hasPrefix("repo:commit_status_") ? Self.commitStatusEvent(name, payload) : .irrelevant(name)
    }

    func isPush(event name: String) -> Bool { name == "repo:push" }

    /// Each change's new head; deletions (`new` null) and refs of other types skipped.
    func pushMoves(_ json: [UInt8]) -> [PushEvent.Move] {
        (JSON.value(at: ["push", "changes"], in: json)?.arrayValue ?? []).compactMap { change in
            guard let new = change["new"], let name = new["name"]?.stringValue, !name.isEmpty,
                let sha = new["target"]?["hash"]?.stringValue, PushEvent.isHead(sha)
            else { return nil }
            switch new["type"]?.stringValue {
            case "branch": return ("refs/heads/" + name, sha)
            case "tag", "annotated_tag": return ("refs/tags/" + name, sha)
            default: return nil
            }
        }
    }

    // Events

    /// A commit status `state` (webhooks `repo:commit_status_*`).
    static func commitStatus(_ state: String) -> ProviderEvent.Reading {
        switch state {
        case "INPROGRESS": .running
        case "SUCCESSFUL": .ended(.succeeded)
        case "FAILED": .ended(.failed)
        case "STOPPED": .ended(.cancelled)
        default: .recorded
        }
    }

    /// A pipeline's `state.name`, its `stage.name` (while `IN_PROGRESS`) and `result.name` (once
    /// `COMPLETED`), from the pipelines API (polls).
    static func pipeline(state: String, stage: String?, result: String?) -> ProviderEvent.Reading {
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

    /// The run key is `commit_status.key` (the pipeline uuid for Pipelines), or `#<n>` for the
    /// build number in a `…/results/<n>` URL when the key is not a uuid.
    static func commitStatusEvent(_ name: String, _ p: JSON) -> ProviderEvent {
        let cs = p["commit_status"]
        let status = cs?["state"]?.stringValue ?? ""
        let url = cs?["url"]?.stringValue
        var runKey = cs?["key"]?.stringValue
        if let url, let r = url.firstRange(of: "/results/") {
            let digits = url[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
            if !digits.isEmpty, runKey?.hasPrefix("{") != true { runKey = "#" + digits }
        }
        return ProviderEvent(
            name: name, relevant: true, runKey: runKey, jobID: nil, state: nil,
            detail: ["state": .string(status), "name": cs?["name"] ?? .null], url: url,
            sha: ProviderEvent.commit(cs?["commit"]?["hash"])
        ).reading(commitStatus(status))
    }

    // Calls

    var methods: Set<String> { ["custom_pipeline"] }
    var needsPipelines: Bool { true }

    func dispatch(_ t: Dispatch.Target, secret: String) throws(DispatchError) -> OutboundRequest {
        guard let pipeline = t.pipeline else { throw DispatchError("no pipeline for environment \(t.environment)") }
        guard t.refKind != .sha else {
            throw DispatchError("Bitbucket custom pipelines run on a branch or tag, not a bare sha")
        }
        var target: JSONObject = [
            "type": "pipeline_ref_target", "ref_type": .string(t.refKind == .tag ? "tag" : "branch"),
            "ref_name": .string(t.shortRef), "selector": ["type": "custom", "pattern": .string(pipeline)],
        ]
        if let sha = t.sha { target["commit"] = ["type": "commit", "hash": .string(sha)] }
        let body: JSON = .object([
            "target": .object(target),
            "variables": .array(
                t.variables.map {
                    .object(["key": .string($0.0), "value": .string($0.1), "secured": false])
                }),
        ])
        return OutboundRequest(
            method: "POST", url: "\(t.base("https://api.bitbucket.org/2.0"))/repositories/\(t.repo)/pipelines/",
            headers: [
                ("Content-Type", "application/json"), ("Accept", "application/json"),
                ("User-Agent", Dispatch.userAgent),
            ],
            body: body.serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "),
            secretName: secret, timeoutMS: t.timeoutMS)
    }

    func started(_ answer: JSON?, repo: String) -> Dispatch.Outcome {
        let number = answer?["build_number"]?.intValue
        return .started(
            runID: answer?["uuid"]?.stringValue,
            url: number.map { "https://bitbucket.org/\(repo)/pipelines/results/\($0)" })
    }

    func runRequest(
        _ action: RunControl.Action, runID: String, target t: Dispatch.Target,
        secret: String
    ) throws(DispatchError) -> OutboundRequest {
        let pipelines = "\(t.base("https://api.bitbucket.org/2.0"))/repositories/\(t.repo)/pipelines"
        let run = "\(pipelines)/\(Dispatch.percentEncode(runID))"
        return OutboundRequest(
            method: action == .poll ? "GET" : "POST", url: run + (action == .cancel ? "/stopPipeline" : ""),
            headers: [("User-Agent", Dispatch.userAgent), ("Accept", "application/json")], body: [],
            credential: .header(name: "Authorization", prefix: "Bearer "), secretName: secret, timeoutMS: t.timeoutMS)
    }

    /// `state.name` PENDING, IN_PROGRESS (`stage.name` RUNNING, PAUSED, HALTED), COMPLETED
    /// (`result.name` SUCCESSFUL, FAILED, ERROR, STOPPED, EXPIRED); older answers name PAUSED or
    /// HALTED as the state. Read as the commit status a webhook would carry, then by `pipeline`.
    func polled(_ run: JSON) -> ProviderEvent? {
        let state = run["state"]
        let name = state?["name"]?.stringValue ?? ""
        let status: JSON = .object([
            "key": run["uuid"] ?? .null, "state": .string(name), "name": run["build_number"] ?? .null,
            "commit": .object(["hash": run["target"]?["commit"]?["hash"] ?? .null]),
        ])
        var event = Self.commitStatusEvent("pipeline poll", .object(["commit_status": status]))
        let stage = state?["stage"]?["name"]?.stringValue
        let result = state?["result"]?["name"]?.stringValue
        event.detail["stage"] = stage.map(JSON.string)
        event.detail["result"] = result.map(JSON.string)
        return event.reading(Self.pipeline(state: name, stage: stage, result: result))
    }
}
