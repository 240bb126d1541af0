internal import Glibc

/// An environment's policy as applied from configuration: reads the `policies` and
/// `policy_refs` tables (`ConfigApply` writes them).
package struct Policy: Sendable {
    package enum LockMode: String, Sendable { case queue, reject }

    package struct RefRule: Sendable, Equatable {
        package var kind: RefKind
        /// A glob: `*` matches any run of characters (including `/`), `?` one, `[…]` a class.
        package var pattern: String
    }

    package var environmentID: Int64
    package var version: Int64
    package var approvalsRequired: Int
    package var lockMode: LockMode
    package var leaseSeconds: Int64
    package var refs: [RefRule]
    /// What a deploy that failed or timed out while running leads to, in `FailureAction`'s
    /// order: `diagnostic` (a `deploy:info` job), then `rollback` (to the last succeeded release).
    package var onFailure: [FailureAction] = []
    /// Whether a rollback needs the same approvals as a deploy (`rollback_approvals`; default
    /// false: a rollback restores a release that was already approved).
    package var rollbackApprovals = false
    /// Who may approve and for how long (read with the rest, so a vote reads the row once).
    package var approvals = Approvals.Rules(version: 0, required: 0, groups: "[]", selfApproval: false, ttl: 86_400)

    package var kinds: Set<RefKind> { Set(refs.map(\.kind)) }

    package static func load(_ db: Database, environmentID: Int64) throws -> Policy {
        guard
            let policy = try db.first(
                """
                SELECT version, approvals_required, lock_mode, lease_s, on_failure, coalesce(json_extract(document,
                '$.rollback_approvals'), 0),
                       \(Approvals.Rules.columns)
                FROM policies WHERE environment_id = ?1
                """,
                [.int(environmentID)],
                { row in
                    Policy(
                        environmentID: environmentID, version: row.int(0), approvalsRequired: Int(row.int(1)),
                        lockMode: LockMode(rawValue: row.text(2)) ?? .queue, leaseSeconds: row.int(3), refs: [],
                        onFailure: ((try? JSON.parse(row.text(4)))?.arrayValue ?? []).compactMap {
                            $0.stringValue.flatMap(FailureAction.init(rawValue:))
                        },
                        rollbackApprovals: row.int(5) != 0,
                        approvals: Approvals.Rules(row: row, at: 6))
                })
        else { throw DravenError.notFound(what: "the environment has no policy") }
        var result = policy
        result.refs = try db.query(
            "SELECT kind, pattern FROM policy_refs WHERE environment_id = ?1 ORDER BY kind, pattern",
            [.int(environmentID)]
        ) { RefRule(kind: RefKind(rawValue: $0.text(0)) ?? .branch, pattern: $0.text(1)) }
        return result
    }

    /// - Throws: `DravenError.policyDenied` (rule `refs`) when no rule allows `ref`, naming what
    ///   the environment does accept.
    package func check(_ ref: GitRef, environment: String) throws {
        if refs.contains(where: { $0.kind == ref.kind && Policy.glob($0.pattern, matches: ref.name) }) { return }
        let accepted =
            refs.isEmpty
            ? "nothing (no refs rule)" : refs.map { "\($0.kind.rawValue) \($0.pattern)" }.joined(separator: ", ")
        throw DravenError.policyDenied(
            rule: "refs",
            detail: "\(environment) accepts only \(accepted); \(ref.kind.rawValue) \(ref.name) does not match")
    }

    /// Glob matching with fnmatch(3), without FNM_PATHNAME: `*` also matches `/`.
    package static func glob(_ pattern: String, matches name: String) -> Bool {
        fnmatch(pattern, name, 0) == 0
    }
}
