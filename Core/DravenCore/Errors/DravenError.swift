/// Every decision draven refuses a request with. A closed enum: adding a case fails the build
/// until `Problem+DravenError.swift` maps it to a status and a stable `type`.
package enum DravenError: Error, Equatable, Sendable {
    /// The request's bytes are not what the route accepts (bad JSON, missing body).
    case malformed(String)
    /// A field is present but invalid; `pointer` is an RFC 6901 JSON pointer such as `/ref`.
    case invalidField(pointer: String, reason: String)
    case unsupportedMediaType(expected: String, got: String?)
    case bodyTooLarge(limit: Int)
    /// A part of a body that is over its own limit (a log chunk's decoded data: 64 KiB), 413 too.
    case contentTooLarge(what: String, limit: Int)
    case methodNotAllowed(allowed: [String])
    /// No or unknown credentials. The detail never says which part was wrong.
    case unauthenticated
    /// A webhook or callback whose signature, token or timestamp does not verify, or that names
    /// no configured integration. The detail says which check failed, never a secret.
    case badSignature(String)
    /// A runner callback or heartbeat carrying a fencing token that no longer holds the lock.
    case staleFencingToken(job: Int64)
    /// Authenticated, but no grant for `action` on the environment.
    case forbidden(action: String, project: String, environment: String)
    /// The environment's policy refused; `rule` names the rule.
    case policyDenied(rule: String, detail: String)
    case notFound(what: String)
    /// A verified chat request from a platform user no configured person is linked to.
    case unknownChatUser(platform: String, userID: String)
    /// The environment is locked and its policy is `reject`.
    case environmentBusy(environment: String, heldBy: Int64)
    /// A conflicting state (e.g. an Idempotency-Key reused for a different request).
    case conflict(String)
    /// An `Idempotency-Key` already used for a different request by the same person.
    case idempotencyKeyReused
    /// The store is missing or has not been migrated.
    case storeNotReady(String)
    case tooManyRequests(retryAfter: Int)
    /// A console form posted without its session's CSRF token, with another's, or from another site.
    case csrf(String)
}
