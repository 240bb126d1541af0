/// Owns the `approvals` table.
///
/// Votes on jobs awaiting approval, from the API and from chat. One function, `vote`, decides
/// every vote the same way whatever it came through; it runs inside the caller's transaction so
/// the vote, its audit record and the job's next step (rejected, or the lock and dispatch, or
/// queued) commit together — or, when refused, not at all.
///
/// Rules (the environment's current policy): the voter needs an `approve` grant, must be in one
/// of `approver_groups`, and may not approve their own deploy unless `self_approval`; a job takes
/// votes only while `awaiting_approval` and within `approval_ttl` of its request (then `draven
/// sweep` moves it to `expired`). A vote is bound to the job's commit sha and the policy version:
/// only approvals matching both, from people still entitled, count. One approval per person per
/// binding; a person who approved may still reject.
package enum Approvals {
    package enum Decision: String, Sendable { case approve, reject }

    /// Who votes, and from where (for the audit trail).
    package struct Voter: Sendable {
        package var personID: Int64
        package var handle: String
        /// `api`, `slack`, `teams` or `mattermost`.
        package var via: String
        package var chatUser: String?
        package var remote: String

        package init(personID: Int64, handle: String, via: String, chatUser: String? = nil, remote: String) {
            self.personID = personID
            self.handle = handle
            self.via = via
            self.chatUser = chatUser
            self.remote = remote
        }
    }

    /// The approval part of an environment's policy.
    package struct Rules: Sendable {
        package var version: Int64
        package var required: Int64
        /// JSON array of group names, as stored.
        package var groups: String
        package var selfApproval: Bool
        package var ttl: Int64

        /// The `policies` columns `init(row:at:)` reads, in order (Policy.load selects them too).
        static let columns = "version, approvals_required, approver_groups, self_approval, approval_ttl_s"

        package static func load(_ db: Database, environmentID: Int64) throws -> Rules {
            guard
                let rules = try db.first(
                    "SELECT \(columns) FROM policies WHERE environment_id = ?1", [.int(environmentID)],
                    { Rules(row: $0, at: 0) })
            else { throw DravenError.notFound(what: "the environment has no policy") }
            return rules
        }

        var groupNames: String {
            ((try? JSON.parse(groups))?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
        }
    }

    package struct Outcome: Sendable {
        /// False when this person's vote under the same binding was already recorded.
        package var counted: Bool
        package var decision: Decision
        package var approvals: Int64
        package var required: Int64
        package var state: JobState
    }

    /// Records a vote and moves the job on when it decides it.
    /// - Parameter replay: a (source, key) remembered with the vote; a second request with the
    ///   same key is refused (Slack signatures, Teams bodies).
    /// - Throws: `.notFound` (no job), `.forbidden` (no approve grant), `.conflict` (the job is
    ///   not awaiting approval or its window closed), `.policyDenied` (rule `approver_groups`,
    ///   `self_approval`, or `refs` when the policy no longer accepts the job's ref),
    ///   `.badSignature` (a replay), `.environmentBusy` (the last approval of a job whose
    ///   environment is locked under a `reject` policy).
    package static func vote(
        _ tx: Transaction, job id: Int64, voter: Voter, decision: Decision, comment: String,
        replay: (source: String, key: String)? = nil, now: Int64
    ) throws -> Outcome {
        let db = tx.db
        let job = try Job.require(db, id: id)
        if let replay {
            let record = Deliveries.Record(source: replay.source, key: replay.key, event: "vote", jobID: id)
            guard try Deliveries.insertOnce(tx, record, now: now) != nil else {
                throw DravenError.badSignature("this signed request was already used (replay)")
            }
        }
        var checks = Checks(db)
        let policy = try checks.check(job, person: voter.personID, handle: voter.handle, decision: decision, now: now)
        let rules = policy.approvals
        let sha = job.sha ?? ""
        let counted =
            try db.first(
                """
                INSERT INTO approvals (job_id, person_id, decision, comment, sha, policy_version, via, chat_user, at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING RETURNING id
                """,
                [
                    .int(id), .int(voter.personID), .text(decision.rawValue), .text(comment), .text(sha),
                    .int(rules.version),
                    .text(voter.via), .text(voter.chatUser), .int(now),
                ]
            ) { _ in true } ?? false
        let detail: JSONObject = [
            "job_id": .int(id), "decision": .string(decision.rawValue), "via": .string(voter.via),
            "chat_user": voter.chatUser.map(JSON.string) ?? .null, "remote": .string(voter.remote),
            "sha": job.sha.map(JSON.string) ?? .null, "policy_version": .int(rules.version),
            "comment": .string(comment),
        ]
        try Audit.record(
            tx, at: now, actor: voter.handle, action: counted ? "approval.\(decision.rawValue)" : "approval.repeat",
            subject: "job/\(id)", detail: detail)
        guard counted else {
            return Outcome(
                counted: false, decision: decision, approvals: try count(db, job: job.id),
                required: rules.required,
                state: job.state)
        }
        try StateMachine.note(tx, job: id, event: "vote", actor: voter.handle, detail: detail, now: now)
        try Events.voted(tx, job: job, approve: decision == .approve, actor: voter.handle, detail: detail, now: now)
        if decision == .reject {
            try StateMachine.transition(
                tx, job: id, to: .rejected, actor: voter.handle,
                detail: ["by": .string(voter.handle), "via": .string(voter.via), "comment": .string(comment)], now: now)
            return Outcome(
                counted: true, decision: decision, approvals: try count(db, job: job.id),
                required: rules.required,
                state: .rejected)
        }
        let approvals = try count(db, job: job.id)
        var state = JobState.awaitingApproval
        if approvals >= rules.required {
            state = try StateMachine.start(tx, job: id, policy: policy, actor: voter.handle, now: now)
        }
        return Outcome(counted: true, decision: decision, approvals: approvals, required: rules.required, state: state)
    }

    /// When approval `a` of job `j` counts now, under its environment's policy row `po`: bound to
    /// the job's current sha and the current policy version, from a person still in an approver
    /// group, and not the requester unless self-approval is allowed (`count` and `counted`).
    /// Whether the person is still enabled is the join's (`people p ... p.disabled = 0`).
    private static let countsNow = """
        a.decision = 'approve' AND a.sha = coalesce(j.sha, '') AND a.policy_version = po.version
          AND (po.self_approval OR a.person_id != j.requested_by)
          AND a.person_id IN (SELECT gm.person_id FROM group_members gm JOIN person_groups g ON g.id = gm.group_id
                              WHERE g.name IN (SELECT value FROM json_each(po.approver_groups)))
        """

    private static let countedFrom = """
        FROM approvals a JOIN people p ON p.id = a.person_id AND p.disabled = 0
        JOIN jobs j ON j.id = a.job_id JOIN policies po ON po.environment_id = j.environment_id
        """

    /// Distinct people whose approval counts now (`countsNow`) on job `id`.
    package static func count(_ db: Database, job id: Int64) throws -> Int64 {
        try db.scalar(
            "SELECT count(DISTINCT a.person_id) " + countedFrom + " WHERE a.job_id = ?1 AND " + countsNow, [.int(id)])
            ?? 0
    }

    /// The people whose approval counts now (`countsNow`) on each of `jobs`, in the order they
    /// approved, in one query (a page of many jobs). Jobs with none are absent.
    package static func counted(_ db: Database, jobs: [Int64]) throws -> [Int64: [(id: Int64, handle: String)]] {
        guard !jobs.isEmpty else { return [:] }
        let ids = JSON.array(jobs.map(JSON.int)).serialized()
        let rows = try db.query(
            "SELECT a.job_id, a.person_id, p.handle " + countedFrom
                + " WHERE a.job_id IN (SELECT value FROM json_each(?1)) AND " + countsNow
                + " GROUP BY a.job_id, a.person_id ORDER BY a.job_id, min(a.id)", [.text(ids)]
        ) { (job: $0.int(0), id: $0.int(1), handle: $0.text(2)) }
        var out: [Int64: [(id: Int64, handle: String)]] = [:]
        for row in rows { out[row.job, default: []].append((row.id, row.handle)) }
        return out
    }

    /// The enabled members of `rules`' approver groups, by handle: who may be asked to approve.
    package static func candidates(_ db: Database, rules: Rules) throws -> [(id: Int64, handle: String)] {
        try db.query(
            """
            SELECT DISTINCT p.id, p.handle FROM people p JOIN group_members gm ON gm.person_id = p.id
            JOIN person_groups g ON g.id = gm.group_id
            WHERE p.disabled = 0 AND g.name IN (SELECT value FROM json_each(?1)) ORDER BY p.handle
            """, [.text(rules.groups)]
        ) { (id: $0.int(0), handle: $0.text(1)) }
    }

    static func isApprover(_ db: Database, person: Int64, rules: Rules) throws -> Bool {
        try db.scalar(
            """
            SELECT 1 FROM group_members gm JOIN person_groups g ON g.id = gm.group_id
            WHERE gm.person_id = ?1 AND g.name IN (SELECT value FROM json_each(?2)) LIMIT 1
            """, [.int(person), .text(rules.groups)]) != nil
    }

    /// The handles of those who approved `job` under `sha` and `policyVersion`, in vote order.
    static func approvers(_ db: Database, job: Int64, sha: String, policyVersion: Int64) throws -> [String] {
        try db.query(
            """
            SELECT p.handle FROM approvals a JOIN people p ON p.id = a.person_id
            WHERE a.job_id = ?1 AND a.decision = 'approve' AND a.sha = ?2 AND a.policy_version = ?3 ORDER BY a.id
            """, [.int(job), .text(sha), .int(policyVersion)]
        ) { $0.text(0) }
    }

    /// Who rejected `job` last, and their comment.
    static func lastRejection(_ db: Database, job: Int64) throws -> (String, String)? {
        try db.first(
            """
            SELECT p.handle, a.comment FROM approvals a JOIN people p ON p.id = a.person_id
            WHERE a.job_id = ?1 AND a.decision = 'reject' ORDER BY a.id DESC LIMIT 1
            """, [.int(job)]
        ) { ($0.text(0), $0.text(1)) }
    }

    /// Every vote on a job, oldest first, each saying whether it counts now.
    package static func list(_ db: Database, job: Job) throws -> JSON {
        let rules = try Rules.load(db, environmentID: job.environmentID)
        let sha = job.sha ?? ""
        let votes = try db.query(
            """
            SELECT p.handle, a.decision, a.comment, a.via, a.chat_user, a.sha, a.policy_version, a.at FROM approvals a
            JOIN people p ON p.id = a.person_id WHERE a.job_id = ?1 ORDER BY a.id
            """, [.int(job.id)]
        ) { row -> JSON in
            let current = row.text(5) == sha && row.int(6) == rules.version
            return .object([
                "person": .string(row.text(0)), "decision": .string(row.text(1)), "comment": .string(row.text(2)),
                "via": .string(row.text(3)), "chat_user": row.optionalText(4).map(JSON.string) ?? .null,
                "sha": row.text(5).isEmpty ? .null : .string(row.text(5)), "policy_version": .int(row.int(6)),
                "at": .string(Clock.rfc3339(row.int(7))), "current": .bool(current),
            ])
        }
        return .object([
            "job_id": .int(job.id), "state": .string(job.state.rawValue), "sha": job.sha.map(JSON.string) ?? .null,
            "policy_version": .int(rules.version), "required": .int(rules.required),
            "approvals": .int(try count(db, job: job.id)),
            "expires_at": .string(Clock.rfc3339(job.createdAt + rules.ttl)), "votes": .array(votes),
        ])
    }

    /// Moves jobs whose approval window has closed to `expired` (what `draven sweep` runs).
    /// - Returns: the ids expired.
    @discardableResult
    package static func expireDue(_ db: Database, now: Int64) throws -> [Int64] {
        let due = try db.query(
            """
            SELECT j.id FROM jobs j JOIN policies p ON p.environment_id = j.environment_id
            WHERE j.state = 'awaiting_approval' AND j.created_at + p.approval_ttl_s <= ?1 ORDER BY j.id
            """, [.int(now)]
        ) { $0.int(0) }
        var expired: [Int64] = []
        for id in due {
            // One transaction each; a vote that committed first wins (the transition is then ignored).
            let moved = try db.immediate { tx -> Bool in
                guard
                    let (ttl, sha) = try tx.db.first(
                        """
                        SELECT p.approval_ttl_s, j.sha FROM jobs j JOIN policies p ON p.environment_id =
                        j.environment_id
                        WHERE j.id = ?1 AND j.state = 'awaiting_approval' AND j.created_at + p.approval_ttl_s <= ?2
                        """, [.int(id), .int(now)], { ($0.int(0), $0.optionalText(1)) })
                else { return false }
                try StateMachine.transition(
                    tx, job: id, to: .expired, actor: "draven sweep",
                    detail: ["approval_ttl_s": .int(ttl), "sha": sha.map(JSON.string) ?? .null], now: now)
                return true
            }
            if moved { expired.append(id) }
        }
        return expired
    }
}

extension Approvals.Rules {
    /// A row's `columns`, starting at column `k` (in an extension: the memberwise init stays).
    init(row: Statement, at k: Int32) {
        self.init(
            version: row.int(k), required: row.int(k + 1), groups: row.text(k + 2), selfApproval: row.int(k + 3) != 0,
            ttl: row.int(k + 4))
    }
}

extension Approvals {
    /// The checks a vote must pass (all but the replay check), in the order `vote` refuses: an
    /// `approve` grant, the job awaiting approval within its window, the voter in an approver
    /// group, no self-approval unless allowed, and (for an approval) the ref still accepted. The
    /// API, chat and the console decide through this one function. It reads each fact once: a
    /// grant per (person, action, environment), a policy per environment, a membership per
    /// (person, approver groups), so a page deciding many jobs reads per environment, not per job.
    package struct Checks {
        let db: Database
        private var policies: [Int64: Policy] = [:]
        private var grants: [String: Bool] = [:]
        private var approvers: [String: Bool] = [:]

        package init(_ db: Database) { self.db = db }

        /// The environment's policy, read once.
        package mutating func policy(_ environmentID: Int64) throws -> Policy {
            if let known = policies[environmentID] { return known }
            let policy = try Policy.load(db, environmentID: environmentID)
            policies[environmentID] = policy
            return policy
        }

        /// Whether `person` holds `action` on `job`'s environment, read once.
        package mutating func allows(_ person: Int64, _ action: Action, _ job: Job) throws -> Bool {
            let key = "\(person) \(action.rawValue) \(job.environmentID)"
            if let known = grants[key] { return known }
            let ok = try Grants.allows(
                db, person: person, action: action, project: job.project, environment: job.environment)
            grants[key] = ok
            return ok
        }

        mutating func isApprover(_ person: Int64, _ rules: Rules) throws -> Bool {
            let key = "\(person) \(rules.groups)"
            if let known = approvers[key] { return known }
            let ok = try Approvals.isApprover(db, person: person, rules: rules)
            approvers[key] = ok
            return ok
        }

        /// Checks that `person` (`handle`) may cast `decision` on `job` at `now`.
        /// - Returns: the environment's policy, under which the vote goes on.
        /// - Throws: what `vote` throws but a replay and `.environmentBusy`: `.notFound` or
        ///   `.forbidden` (no approve grant, as `Grants.require(_:_:_:job:)` answers), `.conflict`
        ///   (not awaiting approval, window closed), `.policyDenied` (`approver_groups`,
        ///   `self_approval`, `refs`).
        package mutating func check(_ job: Job, person: Int64, handle: String, decision: Decision, now: Int64) throws
            -> Policy
        {
            try Grants.require(.approve, job: job) { try allows(person, $0, job) }
            guard job.state == .awaitingApproval else {
                throw DravenError.conflict(
                    "job \(job.id) is \(job.state.rawValue); only a job awaiting approval takes votes")
            }
            let policy = try self.policy(job.environmentID)
            let rules = policy.approvals
            guard now < job.createdAt + rules.ttl else {
                throw DravenError.conflict(
                    "the approval window of job \(job.id) closed at \(Clock.rfc3339(job.createdAt + rules.ttl)); it "
                        + "expires at the next sweep"
                )
            }
            guard try isApprover(person, rules) else {
                throw DravenError.policyDenied(
                    rule: "approver_groups",
                    detail:
                        "approvals for \(job.project)/\(job.environment) come from \(rules.groupNames); \(handle) is "
                        + "in none of them"
                )
            }
            if decision == .approve, !rules.selfApproval, job.requestedByID == person {
                throw DravenError.policyDenied(
                    rule: "self_approval",
                    detail:
                        "\(handle) asked for this deploy and \(job.project)/\(job.environment) does not allow "
                        + "approving your own deploy"
                )
            }
            // The policy may have changed since the request: an approval never lets through a ref it now refuses.
            if decision == .approve {
                try policy.check(
                    try GitRef.parse(job.ref, kind: job.refKind, policyKinds: []), environment: job.environment)
            }
            return policy
        }
    }
}
