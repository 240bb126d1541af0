package import DravenCore

/// `POST /api/v1/jobs/{id}/approvals` — a vote, `{"decision": "approve"|"reject", "comment"?}`;
/// `GET /api/v1/jobs/{id}/approvals` — the votes and the tally; `POST /chatops/slack`,
/// `/chatops/teams`, `/chatops/mattermost` — the same votes from chat (`ChatOps`).
///
/// A vote answers 201 with the tally and the job (200 when this person's vote was already
/// counted). The last approval moves the job on as a trigger would: it takes the lock and
/// dispatches (the dispatch goes out after the answer), or queues. Refusals: 401, 403 (no
/// `approve` grant, not in the approver groups, own deploy), 404, 409 (not awaiting approval,
/// window closed), 422 (invalid field); a refused vote changes nothing but the audit trail.
package enum Approve: RoutedFunction {
    package static let name = "approve"
    /// Slack's interactive payloads carry the whole message they came from.
    package static let maxBodyBytes = 256 * 1024

    package static let router = Router<RouteHandler>([
        (Route("POST", "/api/v1/jobs/{id}/approvals"), vote),
        (Route("GET", "/api/v1/jobs/{id}/approvals"), list),
        (Route("POST", "/chatops/slack"), { @Sendable r, _, c in try ChatOps.slack(r, c) }),
        (Route("POST", "/chatops/teams"), { @Sendable r, _, c in try ChatOps.teams(r, c) }),
        (Route("POST", "/chatops/mattermost"), { @Sendable r, _, c in try ChatOps.mattermost(r, c) }),
    ])

    static func vote(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let input = try ApprovalRequest(try request.jsonBody())
        let db = try context.db()
        let outcome = try cast(input, on: id, by: principal, via: "api", request, context)
        let job = try Job.require(db, id: id)
        return Response(
            status: outcome.counted ? 201 : 200,
            json: [
                "decision": .string(outcome.decision.rawValue), "by": .string(principal.handle),
                "counted": .bool(outcome.counted),
                "approvals": .int(outcome.approvals), "required": .int(outcome.required), "job": .object(job.json),
            ], headers: [("Location", "/api/v1/jobs/\(id)/approvals")])
    }

    /// A vote by `principal` on job `id`, from `via` (`api`, `console`): what the API's and the
    /// console's vote both do.
    static func cast(
        _ input: ApprovalRequest, on id: Int64, by principal: Principal, via: String, _ request: Request,
        _ context: Context
    ) throws -> Approvals.Outcome {
        let voter = Approvals.Voter(
            personID: principal.personID, handle: principal.handle, via: via, remote: request.remoteAddress)
        return try context.db().immediate { tx in
            try Approvals.vote(
                tx, job: id, voter: voter, decision: input.decision, comment: input.comment, now: context.now)
        }
    }

    static func list(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, job) = try Authenticator.readableJob(request, params, context)
        return Response(status: 200, json: try Approvals.list(db, job: job))
    }
}

/// The body of a vote.
struct ApprovalRequest {
    var decision: Approvals.Decision
    var comment: String

    /// - Throws: `.malformed` unless an object; `.invalidField` naming the bad field.
    init(_ body: JSON) throws {
        guard let object = body.objectValue else { throw DravenError.malformed("the body must be a JSON object") }
        for key in object.keys where key != "decision" && key != "comment" {
            throw DravenError.invalidField(pointer: "/" + key, reason: "is not a field of a vote (decision, comment)")
        }
        guard let raw = object["decision"]?.stringValue, let decision = Approvals.Decision(rawValue: raw) else {
            throw DravenError.invalidField(pointer: "/decision", reason: "must be \"approve\" or \"reject\"")
        }
        self.decision = decision
        switch object["comment"] {
        case nil, .null?: comment = ""
        case .string(let s)? where s.utf8.count <= 1000: comment = s
        default: throw DravenError.invalidField(pointer: "/comment", reason: "must be a string of at most 1000 bytes")
        }
    }
}
