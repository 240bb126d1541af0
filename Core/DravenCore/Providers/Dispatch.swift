/// Starting a job's pipeline on its provider: the request for each provider, and what its
/// answer means. Driven by the project's `[integration]` (provider, repo, method, pipelines,
/// token_secret, api_url, project_id, timeout).
///
/// Every pipeline receives the job id, environment, qualified ref and the lock's fencing token:
/// GitHub as workflow inputs `job_id`, `env`, `ref`, `fencing_token`; GitLab and Bitbucket as
/// variables `JOB_ID`, `ENV`, `REF`, `DRAVEN_FENCING_TOKEN`.
package enum Dispatch {
    package static let userAgent = "draven/0.1 (+https://draven.dev)"

    /// What a dispatch needs to know about its job.
    package struct Target: Sendable {
        package var jobID: Int64
        package var environment: String
        package var ref: String       // qualified: refs/heads/x, refs/tags/x or a sha
        package var refKind: RefKind
        package var sha: String?
        package var fencingToken: Int64
        package var integration: JSONObject
        package var provider: String
        package var repo: String
        package var method: String
        /// `deploy`, `rollback` or `diagnostic`: the latter two also pass the Deployer task to run.
        package var kind: JobKind

        package init(jobID: Int64, environment: String, ref: String, refKind: RefKind, sha: String?, fencingToken: Int64,
                     integration: JSONObject, provider: String, repo: String, method: String, kind: JobKind = .deploy) {
            self.jobID = jobID; self.environment = environment; self.ref = ref; self.refKind = refKind; self.sha = sha
            self.fencingToken = fencingToken; self.integration = integration; self.provider = provider; self.repo = repo; self.method = method
            self.kind = kind
        }

        /// The Deployer task of a rollback (`rollback`) or diagnostic (`deploy:info`) job; nil for a
        /// deploy, whose request stays exactly what pipelines without a `task` input accept. Those
        /// two kinds also pass the commit sha when it is known (`sha` / `DRAVEN_SHA`).
        var task: String? { kind.namesTask ? kind.task : nil }

        /// The branch or tag name (providers take short names).
        var shortRef: String {
            if ref.hasPrefix("refs/heads/") { return String(ref.dropFirst(11)) }
            if ref.hasPrefix("refs/tags/") { return String(ref.dropFirst(10)) }
            return ref
        }

        var pipeline: String? {
            let map = integration["pipelines"]?.objectValue
            return map?[environment]?.stringValue ?? map?["*"]?.stringValue
        }

        var timeoutMS: Int {
            let seconds = integration["timeout"]?.intValue ?? 10
            return Int(max(1, min(seconds, 120))) * 1000
        }

        var variables: [(String, String)] {
            [("JOB_ID", String(jobID)), ("ENV", environment), ("REF", ref), ("DRAVEN_FENCING_TOKEN", String(fencingToken))]
            + (task.map { [("DRAVEN_TASK", $0)] } ?? []) + (task != nil ? sha.map { [("DRAVEN_SHA", $0)] } ?? [] : [])
        }

        func base(_ fallback: String) -> String {
            var base = integration["api_url"]?.stringValue ?? fallback
            while base.hasSuffix("/") { base.removeLast() }
            return base
        }
    }

    /// How the provider's answer moves the job.
    package enum Outcome: Equatable, Sendable {
        /// The pipeline started; the run id and page if the provider returned them.
        case started(runID: String?, url: String?)
        /// It will not start however often we ask (bad credentials, unknown workflow or ref).
        case rejected(String)
        /// Try again later (5xx, 429, timeouts, connection failures).
        case retry(String)

        /// The outcome with its message passed through `redactor` (it may quote the provider).
        package func cleaned(by redactor: Redactor) -> Outcome {
            switch self {
            case .started: self
            case .rejected(let why): .rejected(redactor.clean(why))
            case .retry(let why): .retry(redactor.clean(why))
            }
        }
    }

    /// The request that starts `target`'s pipeline.
    /// - Throws: `DispatchError` when the integration cannot express this dispatch.
    package static func request(for target: Target) throws(DispatchError) -> OutboundRequest {
        guard let secret = target.integration["token_secret"]?.stringValue else {
            throw DispatchError("the integration names no token_secret")
        }
        switch target.provider {
        case "github": return try github(target, secret: secret, runDetails: true)
        case "gitlab": return try gitlab(target, secret: secret)
        case "bitbucket": return try bitbucket(target, secret: secret)
        default: throw DispatchError("provider \(target.provider) cannot start pipelines")
        }
    }

    package static func github(_ t: Target, secret: String, runDetails: Bool) throws(DispatchError) -> OutboundRequest {
        guard let workflow = t.pipeline else { throw DispatchError("no pipeline for environment \(t.environment)") }
        guard t.refKind != .sha else { throw DispatchError("GitHub workflow_dispatch runs on a branch or tag, not a bare sha") }
        var inputs: JSONObject = ["job_id": .string(String(t.jobID)), "env": .string(t.environment), "ref": .string(t.ref),
                                  "fencing_token": .string(String(t.fencingToken))]
        if let task = t.task {
            inputs["task"] = .string(task)
            // The exact commit a rollback returns to (a branch has moved on since).
            if let sha = t.sha { inputs["sha"] = .string(sha) }
        }
        var body: JSONObject = ["ref": .string(t.ref), "inputs": .object(inputs)]
        if runDetails { body["return_run_details"] = true }
        return OutboundRequest(
            method: "POST",
            url: "\(t.base("https://api.github.com"))/repos/\(t.repo)/actions/workflows/\(percentEncode(workflow))/dispatches",
            headers: [("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"),
                      ("Content-Type", "application/json"), ("User-Agent", userAgent)],
            body: JSON.object(body).serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "),
            secretName: secret, timeoutMS: t.timeoutMS)
    }

    static func gitlab(_ t: Target, secret: String) throws(DispatchError) -> OutboundRequest {
        let project = t.integration["project_id"]?.stringValue ?? percentEncode(t.repo)
        let base = t.base("https://gitlab.com/api/v4")
        switch t.method {
        case "trigger":
            // The trigger token goes in the body (GitLab's trigger API takes no auth header).
            var form = "token=\(OutboundRequest.bodyPlaceholder)&ref=\(percentEncode(t.shortRef))"
            for (k, v) in t.variables { form += "&variables%5B\(k)%5D=\(percentEncode(v))" }
            return OutboundRequest(
                method: "POST", url: "\(base)/projects/\(project)/trigger/pipeline",
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("User-Agent", userAgent)],
                body: Array(form.utf8), credential: .formField, secretName: secret, timeoutMS: t.timeoutMS)
        default:
            let body: JSON = .object([
                "ref": .string(t.shortRef),
                "variables": .array(t.variables.map { .object(["key": .string($0.0), "value": .string($0.1)]) }),
            ])
            return OutboundRequest(
                method: "POST", url: "\(base)/projects/\(project)/pipeline",
                headers: [("Content-Type", "application/json"), ("User-Agent", userAgent)],
                body: body.serializedBytes(), credential: .header(name: "PRIVATE-TOKEN", prefix: ""), secretName: secret,
                timeoutMS: t.timeoutMS)
        }
    }

    static func bitbucket(_ t: Target, secret: String) throws(DispatchError) -> OutboundRequest {
        guard let pipeline = t.pipeline else { throw DispatchError("no pipeline for environment \(t.environment)") }
        guard t.refKind != .sha else { throw DispatchError("Bitbucket custom pipelines run on a branch or tag, not a bare sha") }
        var target: JSONObject = [
            "type": "pipeline_ref_target", "ref_type": .string(t.refKind == .tag ? "tag" : "branch"), "ref_name": .string(t.shortRef),
            "selector": ["type": "custom", "pattern": .string(pipeline)],
        ]
        if let sha = t.sha { target["commit"] = ["type": "commit", "hash": .string(sha)] }
        let body: JSON = .object([
            "target": .object(target),
            "variables": .array(t.variables.map { .object(["key": .string($0.0), "value": .string($0.1), "secured": false]) }),
        ])
        return OutboundRequest(
            method: "POST", url: "\(t.base("https://api.bitbucket.org/2.0"))/repositories/\(t.repo)/pipelines/",
            headers: [("Content-Type", "application/json"), ("Accept", "application/json"), ("User-Agent", userAgent)],
            body: body.serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "), secretName: secret,
            timeoutMS: t.timeoutMS)
    }

    /// What the provider's answer means for the job.
    package static func outcome(provider: String, repo: String, response: OutboundResponse) -> Outcome {
        let json = try? JSON.parse(response.body)
        let message = providerMessage(json) ?? "HTTP \(response.status)"
        switch response.status {
        case 200...299:
            switch provider {
            case "github":
                let id = json?["workflow_run_id"].flatMap { $0.intValue.map { String($0) } ?? $0.stringValue }
                return .started(runID: id, url: json?["html_url"]?.stringValue)
            case "gitlab":
                let id = json?["id"]?.intValue.map { String($0) }
                return .started(runID: id, url: json?["web_url"]?.stringValue)
            default:
                let uuid = json?["uuid"]?.stringValue
                let number = json?["build_number"]?.intValue
                return .started(runID: uuid, url: number.map { "https://bitbucket.org/\(repo)/pipelines/results/\($0)" })
            }
        case 408, 425, 429, 500...599:
            return .retry("\(provider) answered \(response.status): \(message)")
        case 403 where message.lowercased().contains("rate limit"):
            return .retry("\(provider) rate limit: \(message)")
        default:
            return .rejected("\(provider) refused the dispatch (HTTP \(response.status)): \(message)")
        }
    }

    /// The human message of a provider error body (GitHub `message`, GitLab `message`/`error`,
    /// Bitbucket `error.message`), at most 2,048 bytes and then without its last, possibly cut,
    /// word. It may hold a credential: what keeps it passes it through `Redactor.clean` (which
    /// also bounds it to 500 bytes).
    static func providerMessage(_ json: JSON?) -> String? {
        guard let json else { return nil }
        let text = json["message"]?.stringValue ?? json["message"]?.serialized() ?? json["error"]?.stringValue
            ?? json["error"]?["message"]?.stringValue
        guard let text, text.utf8.count > 2048 else { return text }
        var cut = Array(text.utf8.prefix(2048))
        while let last = cut.last, !Redactor.ends(last) { cut.removeLast() }
        return String(decoding: cut, as: UTF8.self) + "…"
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    package static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case 0x41...0x5a, 0x61...0x7a, 0x30...0x39, 0x2d, 0x2e, 0x5f, 0x7e: out.append(Character(Unicode.Scalar(b)))
            default: out += "%" + Hex.encode([b]).uppercased()
            }
        }
        return out
    }
}

/// A dispatch the integration cannot express; the job fails with this message.
package struct DispatchError: Error, Sendable, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}
