/// GitLab (gitlab.com and self-managed): its webhooks and the pipeline API calls draven makes
/// (../shared/reference/providers.md §1.3, §2.2, §3.2).
///
/// - Verification: `X-Gitlab-Token: <webhook_secret>` (compared in constant time); an integration
///   naming a `signing_secret` requires GitLab's signed webhooks as well (`GitLabSignature`), whose
///   `webhook-id` is then the delivery id.
/// - Headers: event `X-Gitlab-Event`; delivery id `Idempotency-Key`, else `X-Gitlab-Event-UUID`.
/// - Events: `Pipeline Hook`, `Job Hook`, `Deployment Hook` (mapped as `ProviderEvent`'s table
///   says); pushes: `Push Hook`, `Tag Push Hook` (`ref`, `after`).
/// - Calls: method `trigger` (`POST /projects/{id}/trigger/pipeline`, the trigger token in the form
///   body) or `pipeline` (`POST /projects/{id}/pipeline`, `PRIVATE-TOKEN`); poll
///   `GET /projects/{id}/pipelines/{id}`, cancel `POST …/cancel` — not with a trigger token alone.
struct GitLab: CIProvider {
    var hookRoute: String { "gitlab" }
    var eventHeader: String { "x-gitlab-event" }
    var deliveryHeaders: [String] { ["idempotency-key", "x-gitlab-event-uuid"] }

    func repository(in json: [UInt8]) -> String? { JSON.string(at: ["project", "path_with_namespace"], in: json) }

    /// The token (`webhook_secret`), or for an integration naming a `signing_secret` GitLab's
    /// signature (then required), and the token as well if one is configured.
    /// - Returns: the signed `webhook-id` when signatures are required.
    func authenticate(
        _ request: Request, _ integration: HookIntegration, db: Database, paths: Paths,
        now: Int64
    ) throws -> String? {
        guard JSON.string(at: ["signing_secret"], in: integration.document) != nil else {
            try verify(request, secret: try integration.secret("webhook_secret", db: db, paths: paths))
            return nil
        }
        let signing = try integration.secret("signing_secret", db: db, paths: paths)
        let id = try GitLabSignature.verify(request, secret: signing, now: now)
        // A token configured as well is checked as well.
        if JSON.string(at: ["webhook_secret"], in: integration.document) != nil {
            try verify(request, secret: try integration.secret("webhook_secret", db: db, paths: paths))
        }
        return id
    }

    func verify(_ request: Request, secret: SecretBytes) throws {
        guard let token = request.header("x-gitlab-token") else {
            throw DravenError.badSignature("X-Gitlab-Token is missing")
        }
        guard Array(token.utf8).withUnsafeBytes({ secret.constantTimeEquals($0) }) else {
            throw DravenError.badSignature("X-Gitlab-Token is wrong")
        }
    }

    func parse(event name: String, payload: JSON) -> ProviderEvent {
        switch name {
        case "Pipeline Hook": return Self.pipelineHook(payload)
        case "Job Hook": return Self.jobHook(payload)
        case "Deployment Hook":
            var e = ProviderEvent.irrelevant(name)
            e.relevant = true
            e.detail = ["status": payload["status"] ?? .null, "deployable_id": payload["deployable_id"] ?? .null]
            return e
        default: return .irrelevant(name)
        }
    }

    func isPush(event name: String) -> Bool { name == "Push Hook" || name == "Tag Push Hook" }

    func pushMoves(_ json: [UInt8]) -> [PushEvent.Move] { PushEvent.singleRef(json) }

    // Events

    /// A pipeline's `status` (webhook `object_attributes.status`, or the API's pipeline).
    static func pipeline(status: String) -> ProviderEvent.Reading {
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

    static func pipelineHook(_ p: JSON) -> ProviderEvent {
        let attrs = p["object_attributes"]
        let status = attrs?["status"]?.stringValue ?? ""
        let variables = attrs?["variables"]?.arrayValue ?? []
        let jobID = variables.first { $0["key"]?.stringValue == "JOB_ID" }?["value"]?.stringValue.flatMap { Int64($0) }
        return ProviderEvent(
            name: "Pipeline Hook", relevant: true, runKey: ProviderEvent.idString(attrs?["id"]),
            jobID: jobID, state: nil, detail: ["status": .string(status)],
            url: attrs?["url"]?.stringValue,
            sha: ProviderEvent.commit(attrs?["sha"])
        ).reading(pipeline(status: status))
    }

    static func jobHook(_ p: JSON) -> ProviderEvent {
        let status = p["build_status"]?.stringValue ?? ""
        return ProviderEvent(
            name: "Job Hook", relevant: true, runKey: ProviderEvent.idString(p["pipeline_id"]),
            jobID: nil, state: status == "running" ? .running : nil,
            detail: [
                "build_status": .string(status), "build_name": p["build_name"] ?? .null,
                "failure_reason": p["build_failure_reason"] ?? .null,
            ],
            url: nil, sha: ProviderEvent.commit(p["sha"]))
    }

    // Calls

    var methods: Set<String> { ["trigger", "pipeline"] }
    /// The project's own `.gitlab-ci.yml` decides what runs.
    var needsPipelines: Bool { false }

    func dispatch(_ t: Dispatch.Target, secret: String) throws(DispatchError) -> OutboundRequest {
        let project = t.integration["project_id"]?.stringValue ?? Dispatch.percentEncode(t.repo)
        let base = t.base("https://gitlab.com/api/v4")
        switch t.method {
        case "trigger":
            // The trigger token goes in the body (GitLab's trigger API takes no auth header).
            var form = "token=\(OutboundRequest.bodyPlaceholder)&ref=\(Dispatch.percentEncode(t.shortRef))"
            for (k, v) in t.variables { form += "&variables%5B\(k)%5D=\(Dispatch.percentEncode(v))" }
            return OutboundRequest(
                method: "POST", url: "\(base)/projects/\(project)/trigger/pipeline",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("User-Agent", Dispatch.userAgent)],
                body: Array(form.utf8), credential: .formField, secretName: secret, timeoutMS: t.timeoutMS)
        default:
            let body: JSON = .object([
                "ref": .string(t.shortRef),
                "variables": .array(t.variables.map { .object(["key": .string($0.0), "value": .string($0.1)]) }),
            ])
            return OutboundRequest(
                method: "POST", url: "\(base)/projects/\(project)/pipeline",
                headers: [("Content-Type", "application/json"), ("User-Agent", Dispatch.userAgent)],
                body: body.serializedBytes(), credential: .header(name: "PRIVATE-TOKEN", prefix: ""),
                secretName: secret, timeoutMS: t.timeoutMS)
        }
    }

    func started(_ answer: JSON?, repo: String) -> Dispatch.Outcome {
        .started(runID: answer?["id"]?.intValue.map { String($0) }, url: answer?["web_url"]?.stringValue)
    }

    /// A credential is used only for what it is: a pipeline trigger token (`method = "trigger"`)
    /// starts pipelines and nothing else, so without an `api_token_secret` (a token with
    /// `read_api` to poll, `api` to cancel) such runs are followed by webhooks and the lease only.
    func runControlRefusal(method: String, integration: JSONObject) -> String? {
        guard method == "trigger", integration["api_token_secret"]?.stringValue == nil else { return nil }
        return "the GitLab integration has only a pipeline trigger token, which cannot read or cancel pipelines "
            + "(add api_token_secret to let draven do so)"
    }

    func runRequest(
        _ action: RunControl.Action, runID: String, target t: Dispatch.Target,
        secret: String
    ) throws(DispatchError) -> OutboundRequest {
        let project = t.integration["project_id"]?.stringValue ?? Dispatch.percentEncode(t.repo)
        let pipelines = "\(t.base("https://gitlab.com/api/v4"))/projects/\(project)/pipelines"
        let run = "\(pipelines)/\(Dispatch.percentEncode(runID))"
        // A trigger token can start pipelines but not read or cancel them: `api_token_secret` names one that can;
        // with the `pipeline` method, `token_secret` is already such a token.
        if let why = runControlRefusal(method: t.method, integration: t.integration) {
            throw DispatchError("not sent: \(why)")
        }
        return OutboundRequest(
            method: action == .poll ? "GET" : "POST", url: run + (action == .cancel ? "/cancel" : ""),
            headers: [("User-Agent", Dispatch.userAgent), ("Accept", "application/json")], body: [],
            credential: .header(name: "PRIVATE-TOKEN", prefix: ""),
            secretName: t.integration["api_token_secret"]?.stringValue ?? secret, timeoutMS: t.timeoutMS)
    }

    func polled(_ run: JSON) -> ProviderEvent? {
        var attrs = run.objectValue ?? [:]
        if attrs["url"] == nil { attrs["url"] = run["web_url"] }
        return Self.pipelineHook(.object(["object_attributes": .object(attrs)]))
    }
}

/// GitLab's signed webhooks, the Standard Webhooks scheme (standardwebhooks.com; GitLab MR
/// !230944): `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
/// space-separated list of `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`
/// (several during a key rotation; other versions are ignored). The key is the base64 after
/// `whsec_` in the signing token GitLab was given (the prefix is optional here).
///
/// The timestamp must be within five minutes of now; the id is signed, so it is the delivery id
/// draven dedupes by (with the body hash): a replay inside the window is a duplicate that changes
/// nothing, one outside it is refused.
enum GitLabSignature {
    static let window: Int64 = 300

    /// - Returns: the verified `webhook-id`.
    /// - Throws: `.badSignature` naming the header that is missing, malformed, stale or wrong.
    static func verify(_ request: Request, secret: SecretBytes, now: Int64) throws -> String {
        guard let id = request.header("webhook-id"), !id.isEmpty, id.utf8.count <= 255 else {
            throw DravenError.badSignature("webhook-id is missing (this GitLab integration requires signatures)")
        }
        guard let timestamp = SignedRequest.timestamp(request.header("webhook-timestamp")) else {
            throw DravenError.badSignature("webhook-timestamp is missing or not Unix seconds (digits only)")
        }
        guard abs(now - timestamp) <= window else {
            throw DravenError.badSignature("webhook-timestamp is more than five minutes away from now")
        }
        guard let header = request.header("webhook-signature"), !header.isEmpty else {
            throw DravenError.badSignature("webhook-signature is missing (this GitLab integration requires signatures)")
        }
        let key = try self.key(secret)
        let expected = Sodium.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + request.body)
        var matched = false
        // Split at the space byte, as the reference implementation splits (`split(" ")`): split as
        // a String, a space followed by a combining mark is one Character, and the entry before
        // it was not seen (found by the fuzz target `signatures`).
        for entry in header.utf8.split(separator: 0x20) where entry.starts(with: "v1,".utf8) {
            // Every entry is compared (constant time each): no early exit tells which one matched.
            if let given = SecretsCrypto.base64Decode(entry.dropFirst(3)),
                Sodium.constantTimeEquals(given, expected)
            {
                matched = true
            }
        }
        guard matched else { throw DravenError.badSignature("webhook-signature does not match the body") }
        return id
    }

    /// The HMAC key: the signing token's base64 (after `whsec_`), decoded; padding may be left
    /// out, as the reference implementation allows.
    static func key(_ secret: SecretBytes) throws -> SecretBytes {
        guard let key = StandardWebhooks.key(secret) else {
            throw DravenError.badSignature("the GitLab signing secret in the secrets store is not whsec_<base64>")
        }
        return key
    }
}
