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

    /// A deploy request by `principal`, decided and recorded: what `POST /api/v1/deploys`, chat and the
    /// console's deploy form do (`Deploys`, which a plan's deploy step uses too). The grant, the policy
    /// and the ref are checked, then the key (`idempotencyKey`, read at that point), then the job is
    /// created and moved on in one transaction.
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
        let checked = try Deploys.check(db, input, by: principal)
        let key = try idempotencyKey()
        let (id, replayed) = try db.immediate { tx -> (Int64, Bool) in
            var delivery: Int64?
            if let replay {
                let record = Deliveries.Record(source: replay.source, key: replay.key, event: "deploy")
                delivery = try Deliveries.insertOnce(tx, record, now: context.now)
                guard delivery != nil else {
                    throw DravenError.badSignature("this signed request was already used (replay)")
                }
            }
            let (id, replayed) = try Deploys.create(
                tx, checked, by: principal, idempotencyKey: key, subject: context.subject, now: context.now)
            if let delivery, !replayed { try Deliveries.attach(tx, id: delivery, job: id) }
            return (id, replayed)
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
