/// A deploy request, decided and recorded: what `POST /api/v1/deploys`, the console's deploy form,
/// chat and a deploy plan's deploy step all do. `check` reads (the environment, the grant, the
/// policy, the ref); `create` writes, inside the caller's transaction: the job (or the earlier one
/// with the same idempotency key), moved on to `awaiting_approval` or `start`ed (the lock, or the
/// queue, or `.environmentBusy` under a `reject` policy).
package enum Deploys {
    /// A request whose grant, policy and ref passed: what `create` writes from.
    package struct Checked: Sendable {
        package var input: DeployRequest
        package var target: Target
        package var policy: Policy
        package var ref: GitRef
        /// What an idempotency key is bound to: the same key with another digest is refused.
        package var digest: String
    }

    /// - Throws: `.notFound` (no such project or environment), `.forbidden`, `.invalidField`, `.policyDenied`.
    package static func check(_ db: Database, _ input: DeployRequest, by principal: Principal) throws -> Checked {
        let target = try Target.find(db, project: input.project, environment: input.environment)
        try Grants.require(db, principal, .deploy, project: input.project, environment: input.environment)
        let policy = try Policy.load(db, environmentID: target.environmentID)
        let ref = try GitRef.parse(input.ref, kind: input.refKind, policyKinds: policy.kinds)
        try policy.check(ref, environment: input.environment)
        let digest = Sodium.sha256Hex(
            Array(
                JSON.array([
                    .string(input.project), .string(input.environment), .string(ref.qualified),
                    input.sha.map(JSON.string) ?? .null, .string(input.reason),
                ]).serializedBytes()))
        return Checked(input: input, target: target, policy: policy, ref: ref, digest: digest)
    }

    /// Creates the job `checked` describes, requested by `principal`, and moves it on; with `key`,
    /// a request already made with it answers its job instead (`replayed`).
    /// - Throws: `.idempotencyKeyReused`, `.environmentBusy`.
    package static func create(
        _ tx: Transaction, _ checked: Checked, by principal: Principal, idempotencyKey key: String?,
        subject: String, now: Int64
    ) throws -> (id: Int64, replayed: Bool) {
        if let key, let existing = try Job.idempotent(tx.db, requestedBy: principal.personID, key: key) {
            guard existing.requestDigest == checked.digest else { throw DravenError.idempotencyKeyReused }
            return (existing.id, true)
        }
        let input = checked.input
        let policy = checked.policy
        var new = StateMachine.NewJob(
            projectID: checked.target.projectID, environmentID: checked.target.environmentID, ref: checked.ref,
            sha: input.sha, reason: input.reason, requestedBy: principal.personID, policyVersion: policy.version,
            idempotencyKey: key, requestDigest: checked.digest)
        new.traceparent = input.traceparent
        let id = try StateMachine.create(tx, new, actor: principal.handle, subject: subject, now: now)
        if policy.approvalsRequired > 0 {
            try StateMachine.transition(
                tx, job: id, to: .awaitingApproval, actor: principal.handle,
                detail: ["approvals_required": .int(Int64(policy.approvalsRequired))], now: now)
        } else {
            try StateMachine.start(tx, job: id, policy: policy, actor: principal.handle, now: now)
        }
        return (id, false)
    }
}

/// The fields of a deploy request.
package struct DeployRequest: Sendable {
    package var project: String
    package var environment: String
    package var ref: String
    package var refKind: String?
    package var sha: String?
    package var reason: String
    /// The trace context the job is part of when it is not the request's (a plan run's step).
    package var traceparent: String?

    static let fields = ["project", "environment", "ref", "ref_kind", "sha", "reason"]

    package init(
        project: String, environment: String, ref: String, refKind: String? = nil, sha: String? = nil,
        reason: String = ""
    ) {
        self.project = project
        self.environment = environment
        self.ref = ref
        self.refKind = refKind
        self.sha = sha
        self.reason = reason
    }

    /// - Throws: `.malformed` unless an object; `.invalidField` naming the first bad field.
    package init(_ body: JSON) throws {
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
