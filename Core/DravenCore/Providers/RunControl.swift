/// Calls about a run that already exists: asking its state (sweep's polling fallback, for runs
/// whose webhooks never came) and asking the provider to cancel it (`POST /api/v1/jobs/{id}/cancel`).
/// Both go through the outbox (`poll` and `cancel` rows) like every outbound call.
///
/// | provider | state | cancel |
/// |---|---|---|
/// | GitHub | `GET /repos/{repo}/actions/runs/{id}` | `POST /repos/{repo}/actions/runs/{id}/cancel` |
/// | GitLab | `GET /projects/{id}/pipelines/{id}` | `POST /projects/{id}/pipelines/{id}/cancel` |
/// | Bitbucket | `GET /repositories/{repo}/pipelines/{uuid}` | `POST
/// /repositories/{repo}/pipelines/{uuid}/stopPipeline` |
///
/// A polled state is turned into the same `ProviderEvent` the webhook would have carried and
/// applied by the same code (`RunEvents.apply`).
package enum RunControl {
    package enum Action: String, Sendable { case poll, cancel }

    /// Why draven cannot ask about or cancel runs of this integration, or nil when it can
    /// (`CIProvider.runControlRefusal`: a GitLab pipeline trigger token starts pipelines and nothing
    /// else). Such runs are followed by webhooks and the lease only: sweep does not poll them, a
    /// cancel is not sent, and `draven apply` warns.
    package static func refusal(provider: Provider, method: String, integration: JSONObject) -> String? {
        provider.ci.runControlRefusal(method: method, integration: integration)
    }

    static func refusal(_ t: Dispatch.Target) -> String? {
        refusal(provider: t.provider, method: t.method, integration: t.integration)
    }

    /// The request for `action` on run `runID` of `target`'s integration (`CIProvider.runRequest`).
    /// - Throws: `DispatchError` when the integration cannot express it.
    package static func request(_ action: Action, runID: String, target t: Dispatch.Target) throws(DispatchError)
        -> OutboundRequest
    {
        guard let secret = t.integration["token_secret"]?.stringValue else {
            throw DispatchError("the integration names no token_secret")
        }
        return try t.provider.ci.runRequest(action, runID: runID, target: t, secret: secret)
    }

    /// A polled run, as the webhook event that would have reported the same state: the same
    /// mapping (`ProviderEvent`'s table), so a poll and a webhook never disagree. The answer is
    /// the provider's JSON, read as a webhook body is (a repeated key: the last one wins).
    package static func event(provider: Provider, body: [UInt8]) -> ProviderEvent? {
        guard let run = try? JSON.parse(body, duplicateKeys: .lastWins), run.objectValue != nil else { return nil }
        return provider.ci.polled(run)
    }
}
