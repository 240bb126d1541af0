/// Calls about a run that already exists: asking its state (sweep's polling fallback, for runs
/// whose webhooks never came) and asking the provider to cancel it (`POST /api/v1/jobs/{id}/cancel`).
/// Both go through the outbox (`poll` and `cancel` rows) like every outbound call.
///
/// | provider | state | cancel |
/// |---|---|---|
/// | GitHub | `GET /repos/{repo}/actions/runs/{id}` | `POST /repos/{repo}/actions/runs/{id}/cancel` |
/// | GitLab | `GET /projects/{id}/pipelines/{id}` | `POST /projects/{id}/pipelines/{id}/cancel` |
/// | Bitbucket | `GET /repositories/{repo}/pipelines/{uuid}` | `POST /repositories/{repo}/pipelines/{uuid}/stopPipeline` |
///
/// A polled state is turned into the same `ProviderEvent` the webhook would have carried and
/// applied by the same code (`RunEvents.apply`).
package enum RunControl {
    package enum Action: String, Sendable { case poll, cancel }

    /// Why draven cannot ask about or cancel runs of this integration, or nil when it can. A
    /// credential is used only for what it is: a GitLab pipeline trigger token (`method =
    /// "trigger"`) starts pipelines and nothing else, so without an `api_token_secret` (a token
    /// with `read_api` to poll, `api` to cancel) such runs are followed by webhooks and the
    /// lease only: sweep does not poll them, a cancel is not sent, and `draven apply` warns.
    package static func refusal(provider: String, method: String, integration: JSONObject) -> String? {
        guard provider == "gitlab", method == "trigger", integration["api_token_secret"]?.stringValue == nil
        else { return nil }
        return "the GitLab integration has only a pipeline trigger token, which cannot read or cancel pipelines "
            + "(add api_token_secret to let draven do so)"
    }

    static func refusal(_ t: Dispatch.Target) -> String? {
        refusal(provider: t.provider, method: t.method, integration: t.integration)
    }

    /// The request for `action` on run `runID` of `target`'s integration.
    /// - Throws: `DispatchError` when the integration cannot express it.
    package static func request(_ action: Action, runID: String, target t: Dispatch.Target) throws(DispatchError) -> OutboundRequest {
        guard let secret = t.integration["token_secret"]?.stringValue else { throw DispatchError("the integration names no token_secret") }
        let method = action == .poll ? "GET" : "POST"
        let run = Dispatch.percentEncode(runID)
        let url: String
        var headers = [("User-Agent", Dispatch.userAgent), ("Accept", "application/json")]
        var credential = OutboundRequest.Credential.header(name: "Authorization", prefix: "Bearer ")
        switch t.provider {
        case "github":
            url = "\(t.base("https://api.github.com"))/repos/\(t.repo)/actions/runs/\(run)" + (action == .cancel ? "/cancel" : "")
            headers = [("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"), ("User-Agent", Dispatch.userAgent)]
        case "gitlab":
            let project = t.integration["project_id"]?.stringValue ?? Dispatch.percentEncode(t.repo)
            url = "\(t.base("https://gitlab.com/api/v4"))/projects/\(project)/pipelines/\(run)" + (action == .cancel ? "/cancel" : "")
            // A trigger token can start pipelines but not read or cancel them: `api_token_secret` names one that can;
            // with the `pipeline` method, `token_secret` is already such a token.
            if let why = refusal(t) { throw DispatchError("not sent: \(why)") }
            let name = t.integration["api_token_secret"]?.stringValue ?? secret
            credential = .header(name: "PRIVATE-TOKEN", prefix: "")
            return OutboundRequest(method: method, url: url, headers: headers, body: [], credential: credential, secretName: name,
                                   timeoutMS: t.timeoutMS)
        case "bitbucket":
            url = "\(t.base("https://api.bitbucket.org/2.0"))/repositories/\(t.repo)/pipelines/\(run)" + (action == .cancel ? "/stopPipeline" : "")
        default:
            throw DispatchError("provider \(t.provider) has no run API")
        }
        return OutboundRequest(method: method, url: url, headers: headers, body: [], credential: credential, secretName: secret,
                               timeoutMS: t.timeoutMS)
    }

    /// A polled run, as the webhook event that would have reported the same state: the same
    /// mapping (`ProviderEvent`'s table), so a poll and a webhook never disagree. The answer is
    /// the provider's JSON, read as a webhook body is (a repeated key: the last one wins).
    package static func event(provider: String, body: [UInt8]) -> ProviderEvent? {
        guard let run = try? JSON.parse(body, duplicateKeys: .lastWins), run.objectValue != nil else { return nil }
        switch provider {
        case "github":
            return ProviderEvent.githubWorkflowRun(.object(["workflow_run": run]))
        case "gitlab":
            var attrs = run.objectValue ?? [:]
            if attrs["url"] == nil { attrs["url"] = run["web_url"] }
            return ProviderEvent.gitlabPipeline(.object(["object_attributes": .object(attrs)]))
        case "bitbucket":
            // state.name PENDING, IN_PROGRESS (stage.name RUNNING, PAUSED, HALTED), COMPLETED (result.name
            // SUCCESSFUL, FAILED, ERROR, STOPPED, EXPIRED); older answers name PAUSED or HALTED as the state.
            let state = run["state"]
            let name = state?["name"]?.stringValue ?? ""
            let payload: JSON = .object(["commit_status": .object(["key": run["uuid"] ?? .null, "state": .string(name),
                                                                   "name": run["build_number"] ?? .null,
                                                                   "commit": .object(["hash": run["target"]?["commit"]?["hash"] ?? .null])])])
            var event = ProviderEvent.bitbucketStatus("pipeline poll", payload)
            let stage = state?["stage"]?["name"]?.stringValue, result = state?["result"]?["name"]?.stringValue
            event.detail["stage"] = stage.map(JSON.string)
            event.detail["result"] = result.map(JSON.string)
            return event.reading(ProviderEvent.bitbucketPipeline(state: name, stage: stage, result: result))
        default:
            return nil
        }
    }
}
