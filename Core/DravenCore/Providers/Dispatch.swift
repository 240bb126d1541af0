/// Starting a job's pipeline on its provider: the request (each provider's `CIProvider.dispatch`),
/// and what its answer means. Driven by the project's `[integration]` (provider, repo, method,
/// pipelines, token_secret, api_url, project_id, timeout).
///
/// Every pipeline receives the job id, environment, qualified ref and the lock's fencing token:
/// GitHub as workflow inputs `job_id`, `env`, `ref`, `fencing_token`; GitLab and Bitbucket as
/// variables `JOB_ID`, `ENV`, `REF`, `DRAVEN_FENCING_TOKEN`. A job whose request sent a W3C
/// `traceparent` (`TraceContext`) passes it too: input `traceparent`, variable `TRACEPARENT`.
package enum Dispatch {
    package static let userAgent = "draven/0.1 (+https://draven.dev)"

    /// What a dispatch needs to know about its job.
    package struct Target: Sendable {
        package var jobID: Int64
        package var environment: String
        package var ref: String  // qualified: refs/heads/x, refs/tags/x or a sha
        package var refKind: RefKind
        package var sha: String?
        package var fencingToken: Int64
        package var integration: JSONObject
        package var provider: Provider
        package var repo: String
        package var method: String
        /// `deploy`, `rollback` or `diagnostic`: the latter two also pass the Deployer task to run.
        package var kind: JobKind
        /// The job's trace context, passed on so the CI run can join the caller's trace.
        package var traceparent: String?

        package init(
            jobID: Int64, environment: String, ref: String, refKind: RefKind, sha: String?, fencingToken: Int64,
            integration: JSONObject, provider: Provider, repo: String, method: String,
            kind: JobKind = .deploy
        ) {
            self.jobID = jobID
            self.environment = environment
            self.ref = ref
            self.refKind = refKind
            self.sha = sha
            self.fencingToken = fencingToken
            self.integration = integration
            self.provider = provider
            self.repo = repo
            self.method = method
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
            var out = [
                ("JOB_ID", String(jobID)), ("ENV", environment), ("REF", ref),
                ("DRAVEN_FENCING_TOKEN", String(fencingToken)),
            ]
            if let task {
                out.append(("DRAVEN_TASK", task))
                if let sha { out.append(("DRAVEN_SHA", sha)) }
            }
            if let traceparent { out.append(("TRACEPARENT", traceparent)) }
            return out
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
        return try target.provider.ci.dispatch(target, secret: secret)
    }

    /// What the provider's answer means for the job.
    package static func outcome(provider: Provider, repo: String, response: OutboundResponse) -> Outcome {
        let json = try? JSON.parse(response.body)
        let message = providerMessage(json) ?? "HTTP \(response.status)"
        switch response.status {
        case 200...299:
            return provider.ci.started(json, repo: repo)
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
        let text =
            json["message"]?.stringValue ?? json["message"]?.serialized() ?? json["error"]?.stringValue
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
