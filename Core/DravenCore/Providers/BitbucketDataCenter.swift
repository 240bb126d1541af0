/// Bitbucket Data Center / Server: its webhooks only (../shared/reference/providers.md §1.5).
/// It has no pipelines and sends no build events, so draven starts, polls and cancels nothing
/// there (method `none`); its pushes still give waiting jobs their new sha.
///
/// - Verification: `X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`.
/// - Headers: event `X-Event-Key`; delivery id `X-Request-Id` (after `X-Request-UUID`: the
///   `/hooks/bitbucket` route it shares with Bitbucket Cloud has always taken either).
/// - Events: none mapped; pushes: `repo:refs_changed`, whose `changes` list every ref the push
///   moved (`ref.id`, `toHash`, `type`; a `DELETE` moves nothing).
struct BitbucketDataCenter: CIProvider {
    var hookRoute: String { "bitbucket" }
    var eventHeader: String { "x-event-key" }
    var deliveryHeaders: [String] { ["x-request-uuid", "x-request-id"] }

    /// `repository.project.key/slug`.
    func repository(in json: [UInt8]) -> String? {
        guard let key = JSON.string(at: ["repository", "project", "key"], in: json),
            let slug = JSON.string(at: ["repository", "slug"], in: json)
        else { return nil }
        return key + "/" + slug
    }

    func verify(_ request: Request, secret: SecretBytes) throws {
        try HubSignature.verify(request, header: "X-Hub-Signature", secret: secret)
    }

    func parse(event name: String, payload: JSON) -> ProviderEvent { .irrelevant(name) }

    func isPush(event name: String) -> Bool { name == "repo:refs_changed" }

    func pushMoves(_ json: [UInt8]) -> [PushEvent.Move] {
        (JSON.value(at: ["changes"], in: json)?.arrayValue ?? []).compactMap { change in
            guard change["type"]?.stringValue != "DELETE",
                let ref = change["ref"]?["id"]?.stringValue ?? change["refId"]?.stringValue,
                let to = change["toHash"]?.stringValue, PushEvent.isHead(to)
            else { return nil }
            return (ref, to)
        }
    }

    // Calls: none.

    var methods: Set<String> { ["none"] }
    var needsPipelines: Bool { false }

    func dispatch(_ target: Dispatch.Target, secret: String) throws(DispatchError) -> OutboundRequest {
        throw DispatchError("provider \(Provider.bitbucketDataCenter) cannot start pipelines")
    }

    /// Never asked: no dispatch is sent.
    func started(_ answer: JSON?, repo: String) -> Dispatch.Outcome { .started(runID: nil, url: nil) }

    func runRequest(
        _ action: RunControl.Action, runID: String, target: Dispatch.Target,
        secret: String
    ) throws(DispatchError) -> OutboundRequest {
        throw DispatchError("provider \(Provider.bitbucketDataCenter) has no run API")
    }

    func polled(_ run: JSON) -> ProviderEvent? { nil }
}
