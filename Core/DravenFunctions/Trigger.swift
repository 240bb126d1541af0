package import DravenCore

/// `POST /api/v1/deploys` — asks to deploy a project's ref to an environment.
///
/// Body: `{"project", "environment", "ref", "ref_kind"?, "sha"?, "reason"?}`. The caller must
/// hold a `deploy` grant and the ref must pass the environment's policy. The job is created
/// and moved on in one transaction: `awaiting_approval` when the policy needs approvals (no
/// lock is held while people decide), else `dispatching` with the lock and a dispatch in the
/// outbox, else `queued` behind the lock holder (or 409 when the policy rejects).
/// Answers 201 with the job and a `Location`. With an `Idempotency-Key` header, a retry of the
/// same request by the same person answers 200 with the same job (`Idempotent-Replayed: true`);
/// the same key with a different request is a 422.
package enum Trigger: Function {
    package static let name = "trigger"
    package static let maxBodyBytes = 64 * 1024
    static let route = Route("POST", "/api/v1/deploys")

    package static func respond(to request: Request, context: Context) throws -> Response {
        _ = try Router([(route, ())]).resolve(request)
        let principal = try Authenticator.authenticate(request, context)
        let input = try DeployRequest(try request.jsonBody())
        let (job, replayed) = try deploy(input, by: principal, idempotencyKey: { try idempotencyKey(request) }, context)
        var headers = [("Location", "/api/v1/jobs/\(job.id)")]
        if replayed { headers.append(("Idempotent-Replayed", "true")) }
        return Response(status: replayed ? 200 : 201, json: .object(job.json), headers: headers)
    }

    /// A deploy request by `principal`, decided and recorded: what `POST /api/v1/deploys` and the
    /// console's deploy form both do. The grant, the policy and the ref are checked, then the key
    /// (`idempotencyKey`, read at that point), then the job is created and moved on in one transaction.
    /// Returns the job and whether it is a replay of an earlier request with the same key.
    /// - Parameter replay: a signed chat request's replay key (`ChatVerification.Replay`), remembered in
    ///   the job's transaction (`deliveries`, event `deploy`), so a copy of the request, even one
    ///   arriving at the same moment, deploys nothing.
    /// - Throws: `.notFound` (no such project or environment), `.forbidden`, `.invalidField`,
    ///   `.policyDenied`, `.idempotencyKeyReused`, `.environmentBusy`, `.badSignature` (a replay).
    static func deploy(
        _ input: DeployRequest, by principal: Principal, idempotencyKey: () throws -> String?,
        replay: ChatVerification.Replay? = nil, _ context: Context
    ) throws -> (job: Job, replayed: Bool) {
        context.subject = "\(input.project)/\(input.environment)"
        let db = try context.db()
        let target = try Target.find(db, project: input.project, environment: input.environment)
        try Grants.require(db, principal, .deploy, project: input.project, environment: input.environment)
        let policy = try Policy.load(db, environmentID: target.environmentID)
        let ref = try GitRef.parse(input.ref, kind: input.refKind, policyKinds: policy.kinds)
        try policy.check(ref, environment: input.environment)
        let key = try idempotencyKey()
        let digest = Sodium.sha256Hex(
            Array(
                JSON.array([
                    .string(input.project), .string(input.environment), .string(ref.qualified),
                    input.sha.map(JSON.string) ?? .null, .string(input.reason),
                ]).serializedBytes()))

        let (id, replayed) = try db.immediate { tx -> (Int64, Bool) in
            var delivery: Int64?
            if let replay {
                let record = Deliveries.Record(source: replay.source, key: replay.key, event: "deploy")
                delivery = try Deliveries.insertOnce(tx, record, now: context.now)
                guard delivery != nil else {
                    throw DravenError.badSignature("this signed request was already used (replay)")
                }
            }
            if let key, let existing = try Job.idempotent(tx.db, requestedBy: principal.personID, key: key) {
                guard existing.requestDigest == digest else { throw DravenError.idempotencyKeyReused }
                return (existing.id, true)
            }
            let new = StateMachine.NewJob(
                projectID: target.projectID, environmentID: target.environmentID, ref: ref, sha: input.sha,
                reason: input.reason, requestedBy: principal.personID, policyVersion: policy.version,
                idempotencyKey: key, requestDigest: digest)
            let id = try StateMachine.create(
                tx, new, actor: principal.handle, subject: context.subject, now: context.now)
            if let delivery { try Deliveries.attach(tx, id: delivery, job: id) }
            if policy.approvalsRequired > 0 {
                try StateMachine.transition(
                    tx, job: id, to: .awaitingApproval, actor: principal.handle,
                    detail: ["approvals_required": .int(Int64(policy.approvalsRequired))], now: context.now)
            } else {
                try StateMachine.start(tx, job: id, policy: policy, actor: principal.handle, now: context.now)
            }
            return (id, false)
        }
        return (try Job.require(db, id: id), replayed)
    }

    /// - Throws: `.invalidField` when the key is longer than 255 bytes or not printable ASCII.
    static func idempotencyKey(_ request: Request) throws -> String? {
        guard let key = request.header("idempotency-key") else { return nil }
        guard !key.isEmpty, key.utf8.count <= 255, key.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw DravenError.invalidField(
                pointer: "Idempotency-Key", reason: "must be 1 to 255 printable ASCII characters")
        }
        return key
    }
}

/// The fields of a deploy request.
struct DeployRequest {
    var project: String
    var environment: String
    var ref: String
    var refKind: String?
    var sha: String?
    var reason: String

    static let fields = ["project", "environment", "ref", "ref_kind", "sha", "reason"]

    /// - Throws: `.malformed` unless an object; `.invalidField` naming the first bad field.
    init(_ body: JSON) throws {
        let fields = try BodyFields(body, fields: Self.fields, of: "a deploy request")
        func string(_ name: String, required: Bool, max: Int) throws -> String? {
            try fields.string(name, required: required, max: max)
        }
        project = try string("project", required: true, max: 64)!
        environment = try string("environment", required: true, max: 64)!
        ref = try string("ref", required: true, max: 255)!
        refKind = try string("ref_kind", required: false, max: 16)
        sha = try string("sha", required: false, max: 64)
        reason = try string("reason", required: false, max: 1000) ?? ""
        if let sha, !GitRef.isCommitSHA(sha) {
            throw DravenError.invalidField(
                pointer: "/sha", reason: "must be a full commit sha (40 or 64 lowercase hex digits)")
        }
    }
}
