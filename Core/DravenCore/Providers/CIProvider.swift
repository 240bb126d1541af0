/// What draven needs of one CI provider, from webhooks in to pipeline calls out. Each provider
/// implements it in its own file (`GitHub`, `GitLab`, `BitbucketCloud`, `BitbucketDataCenter`);
/// `Provider.ci` picks one. The handler (`webhook-receive`) and the outbox ask it instead of
/// switching on provider names; what is the same for every provider (media types, dedupe, status
/// codes, job matching, applying events) stays with its callers.
///
/// How provider states map to job states, for every provider, is one table: `ProviderEvent`'s.
package protocol CIProvider: Sendable {
    // Webhooks in

    /// The path segment of the webhook route, `POST /hooks/<hookRoute>` (Bitbucket Cloud and Data
    /// Center share `bitbucket`).
    var hookRoute: String { get }
    /// The header naming the event (`X-GitHub-Event`, …), lower-cased.
    var eventHeader: String { get }
    /// The headers a delivery id is read from, the first non-empty one winning; used when the
    /// signature covers no id (these headers are then only a hint, deduped with the body hash).
    var deliveryHeaders: [String] { get }
    /// The repository an unverified payload names (scanned, not decoded), to find the integration
    /// whose secret verifies it.
    func repository(in json: [UInt8]) -> String?
    /// Proves the delivery came from the provider with `integration`'s secrets.
    /// - Returns: the delivery id the signature covers, to dedupe by; nil when it covers none.
    /// - Throws: `.badSignature` naming the missing or wrong header, or the secret not configured.
    func authenticate(
        _ request: Request, _ integration: HookIntegration, db: Database, paths: Paths,
        now: Int64
    ) throws -> String?
    /// Checks the provider's signature or token over the raw body with `secret`.
    /// - Throws: `.badSignature` naming the missing or wrong header.
    func verify(_ request: Request, secret: SecretBytes) throws
    /// Whether draven reads events called `name` at all. Others (`push`, `ping`, …) are verified,
    /// recorded for dedupe and answered 200 without their body being decoded.
    func maps(event name: String) -> Bool
    /// Reads a verified payload; `name` is the event header's value.
    func parse(event name: String, payload: JSON) -> ProviderEvent
    /// Whether events called `name` are pushes (`pushMoves` reads them).
    func isPush(event name: String) -> Bool
    /// The refs a push moved and their new heads, from the payload's JSON text; none for
    /// deletions (or a payload without them).
    func pushMoves(_ json: [UInt8]) -> [PushEvent.Move]

    // Pipelines out

    /// The `method`s an integration may name (`draven apply` checks).
    var methods: Set<String> { get }
    /// Whether the integration must map each environment to a pipeline (`pipelines`).
    var needsPipelines: Bool { get }
    /// The request that starts `target`'s pipeline; `secret` names the token in the secrets store.
    /// - Throws: `DispatchError` when the integration cannot express this dispatch.
    func dispatch(_ target: Dispatch.Target, secret: String) throws(DispatchError) -> OutboundRequest
    /// The request to send once more when `response` says this provider's version refuses part of
    /// the first one, or nil.
    func fallback(
        _ target: Dispatch.Target, secret: String,
        after response: OutboundResponse
    ) throws(DispatchError) -> OutboundRequest?
    /// A 2xx answer to a dispatch: the run id and page, if the provider returned them.
    func started(_ answer: JSON?, repo: String) -> Dispatch.Outcome
    /// Why draven cannot poll or cancel runs of an integration with this `method`, or nil.
    func runControlRefusal(method: String, integration: JSONObject) -> String?
    /// The request for `action` on run `runID`; `secret` is the integration's `token_secret`.
    /// - Throws: `DispatchError` when the integration cannot express it.
    func runRequest(
        _ action: RunControl.Action, runID: String, target: Dispatch.Target,
        secret: String
    ) throws(DispatchError) -> OutboundRequest
    /// A polled run (the API's JSON object), as the webhook reporting the same state; nil when
    /// the provider has no run API.
    func polled(_ run: JSON) -> ProviderEvent?
}

extension CIProvider {
    /// The integration's `webhook_secret` verifies the request (`verify`); no id is signed.
    package func authenticate(
        _ request: Request, _ integration: HookIntegration, db: Database, paths: Paths,
        now: Int64
    ) throws -> String? {
        try verify(request, secret: try integration.secret("webhook_secret", db: db, paths: paths))
        return nil
    }

    package func maps(event name: String) -> Bool {
        parse(event: name, payload: .null).relevant
    }

    package func fallback(
        _ target: Dispatch.Target, secret: String,
        after response: OutboundResponse
    ) throws(DispatchError) -> OutboundRequest? {
        nil
    }

    package func runControlRefusal(method: String, integration: JSONObject) -> String? { nil }
}

/// The `sha256=<hex HMAC-SHA256(secret, raw body)>` header GitHub sends as `X-Hub-Signature-256`
/// and Bitbucket (Cloud and Data Center) as `X-Hub-Signature` — SHA-256 there, not the SHA-1 that
/// GitHub's header of that name carries.
enum HubSignature {
    /// - Parameter name: the header, as messages spell it.
    /// - Throws: `.badSignature` when the header is missing or does not match (constant time).
    static func verify(_ request: Request, header name: String, secret: SecretBytes) throws {
        guard let header = request.header(name) else { throw DravenError.badSignature("\(name) is missing") }
        let expected = Sodium.hmacSHA256(key: secret, message: request.body)
        guard Sodium.hexSignatureMatches(header, prefix: "sha256=", expected: expected) else {
            throw DravenError.badSignature("\(name) does not match the body")
        }
    }
}
