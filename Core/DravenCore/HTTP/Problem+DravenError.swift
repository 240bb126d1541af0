/// The one place where errors become HTTP answers. Domain decisions (`DravenError`) map to
/// their status and stable `type`; lower layers (`SQLiteError`, `JSONParseError`) are mapped
/// here too. Anything else is a 500 whose detail carries only a request id.
extension Problem {
    package init(_ error: DravenError) {
        switch error {
        case .malformed(let why):
            self.init(status: 400, type: "malformed-request", title: "Malformed request", detail: why)
        case .invalidField(let pointer, let reason):
            self.init(
                status: 422, type: "invalid-field", title: "Invalid field", detail: "\(pointer): \(reason)",
                extensions: ["pointer": .string(pointer)])
        case .unsupportedMediaType(let expected, let got):
            self.init(
                status: 415, type: "unsupported-media-type", title: "Unsupported media type",
                detail: "expected Content-Type \(expected), got \(got ?? "none")")
        case .bodyTooLarge(let limit):
            self.init(
                status: 413, type: "body-too-large", title: "Request body too large",
                detail: "the body is larger than \(limit) bytes", extensions: ["limit": .int(Int64(limit))])
        case .contentTooLarge(let what, let limit):
            self.init(
                status: 413, type: "body-too-large", title: "Request body too large",
                detail: "\(what) is larger than \(limit) bytes", extensions: ["limit": .int(Int64(limit))])
        case .methodNotAllowed(let allowed):
            self.init(
                status: 405, type: "method-not-allowed", title: "Method not allowed",
                detail: "use \(allowed.joined(separator: " or "))")
            headers.append(("Allow", allowed.joined(separator: ", ")))
        case .unauthenticated:
            self.init(
                status: 401, type: "unauthenticated", title: "Unauthenticated",
                detail: "a valid API token is required (Authorization: Bearer <token>)")
            headers.append(("WWW-Authenticate", "Bearer realm=\"draven\""))
        case .badSignature(let why):
            self.init(status: 401, type: "bad-signature", title: "Signature not verified", detail: why)
        case .staleFencingToken(let job):
            self.init(
                status: 409, type: "stale-fencing-token", title: "Stale fencing token",
                detail:
                    "job \(job) does not hold the environment's lock with this fencing token (it ended or was "
                    + "superseded)"
            )
        case .forbidden(let action, let project, let environment):
            self.init(
                status: 403, type: "forbidden", title: "Forbidden",
                detail: "no grant allows you to \(action) \(project)/\(environment)",
                extensions: ["action": .string(action)])
        case .policyDenied(let rule, let detail):
            self.init(
                status: 403, type: "policy-denied", title: "Refused by policy", detail: detail,
                extensions: ["rule": .string(rule)])
        case .notFound(let what):
            self.init(status: 404, type: "not-found", title: "Not found", detail: what)
        case .unknownChatUser(let platform, let userID):
            self.init(
                status: 403, type: "unknown-chat-user", title: "Chat user not linked",
                detail: "your \(platform) user \(userID) is not linked to a draven person; ask an operator to add "
                    + "chat = { \(platform) = \"\(userID)\" } to your entry in the configuration",
                extensions: ["platform": .string(platform)])
        case .environmentBusy(let environment, let heldBy):
            self.init(
                status: 409, type: "environment-busy", title: "Environment busy",
                detail: "\(environment) is locked by job \(heldBy) and its policy is to reject, not queue",
                extensions: ["held_by": .int(heldBy)])
        case .conflict(let why):
            self.init(status: 409, type: "conflict", title: "Conflict", detail: why)
        case .idempotencyKeyReused:
            self.init(
                status: 422, type: "idempotency-key-reused", title: "Idempotency-Key reused",
                detail: "this Idempotency-Key was already used for a different request; use a new key")
        case .storeNotReady(let why):
            self.init(status: 503, type: "store-not-ready", title: "Store not ready", detail: why)
            headers.append(("Retry-After", "1"))
        case .tooManyRequests(let retryAfter):
            self.init(status: 429, type: "too-many-requests", title: "Too many requests", detail: "retry later")
            headers.append(("Retry-After", String(retryAfter)))
        case .csrf(let why):
            self.init(status: 403, type: "csrf-refused", title: "Form refused", detail: why)
        }
    }

    /// Maps any error thrown by a function. `requestID` ties a 500 to the stderr log line.
    package init(any error: any Error, requestID: String) {
        switch error {
        case let e as DravenError:
            self.init(e)
        case let e as JSONParseError:
            self.init(.malformed("body is not valid JSON: \(e.reason) at byte \(e.offset)"))
        case let e as SQLiteError where e.isBusy:
            self.init(.storeNotReady("the store is busy; retry"))
        default:
            self.init(
                status: 500, type: "internal", title: "Internal error",
                detail: "an internal error occurred; quote request id \(requestID) to the operator",
                extensions: ["request_id": .string(requestID)])
        }
    }
}
