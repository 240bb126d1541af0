/// Owns the `plans` table: every applied version of every plan, as its canonical document.
///
/// Applying a document that is the same plan as the latest version (the same `Plan.digest`) is a
/// no-op that keeps its version; a changed one becomes the next version. A document may say which
/// version it is (`"version"`): it must then be the latest version (the one it was edited from)
/// or the next, or the apply is a 409 conflict (optimistic locking: someone else applied a
/// version in between). Versions are never changed or removed: a run keeps the version it
/// started with (`load(id:version:)`).
package enum Plans {
    /// One stored version.
    package struct Stored: Sendable {
        package var id: String
        package var version: Int64
        package var digest: String
        /// The canonical document, as stored.
        package var document: String
        package var appliedAt: Int64
        package var appliedBy: String

        /// The plan this version is.
        /// - Throws: what `Plan.parse` throws (only if the row was written by something else).
        package func plan() throws -> Plan { try Plan.parse(try JSON.parse(document)) }

        /// `{"id", "version", "digest", "applied_at", "applied_by", "document"}`.
        package func json() throws -> JSON {
            .object([
                "id": .string(id), "version": .int(version), "digest": .string(digest),
                "applied_at": .string(Clock.rfc3339(appliedAt)), "applied_by": .string(appliedBy),
                "document": try JSON.parse(document),
            ])
        }
    }

    /// What `apply` did: the version now current, and whether this apply made it.
    package struct Applied: Sendable {
        package var stored: Stored
        package var created: Bool
    }

    static let select = "SELECT id, version, digest, document, applied_at, applied_by FROM plans"

    static func row(_ s: Statement) -> Stored {
        Stored(
            id: s.text(0), version: s.int(1), digest: s.text(2), document: s.text(3), appliedAt: s.int(4),
            appliedBy: s.text(5))
    }

    /// Applies `plan` (parsed and checked: `Plan.parse` with the store) as `actor`, writing
    /// `plan.apply` to the audit trail when it makes a version.
    /// - Throws: `DravenError.conflict` when `plan.version` (non-zero: the document said it) is
    ///   neither the latest version nor the next.
    package static func apply(_ tx: Transaction, _ plan: Plan, by actor: String, now: Int64) throws -> Applied {
        let current = try latest(tx.db, id: plan.id)
        let at = current?.version ?? 0
        if plan.version != 0 && plan.version != at && plan.version != at + 1 {
            let state = at == 0 ? "does not exist yet (its first version is 1)" : "is at version \(at)"
            throw DravenError.conflict(
                "plan \(plan.id) \(state); the document says version \(plan.version) "
                    + "(send the version it was edited from, or leave version out)")
        }
        let digest = plan.digest
        if let current, current.digest == digest { return Applied(stored: current, created: false) }
        var stored = plan
        stored.version = at + 1
        let row = Stored(
            id: plan.id, version: at + 1, digest: digest, document: stored.json.serialized(), appliedAt: now,
            appliedBy: actor)
        try tx.db.run(
            """
            INSERT INTO plans (id, version, digest, document, applied_at, applied_by)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """,
            [.text(row.id), .int(row.version), .text(digest), .text(row.document), .int(now), .text(actor)])
        try tx.db.run("DELETE FROM plan_triggers WHERE plan_id = ?1", [.text(plan.id)])
        for (i, t) in plan.triggers.enumerated() {
            try tx.db.run(
                """
                INSERT INTO plan_triggers (plan_id, position, project, ref_kind, pattern, input, run_as)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                """,
                [
                    .text(plan.id), .int(Int64(i)), .text(t.project), .text(t.refKind.rawValue), .text(t.pattern),
                    .text(t.input), .text(t.runAs),
                ])
        }
        try Audit.record(
            tx, at: now, actor: actor, action: "plan.apply", subject: "plan/\(plan.id)",
            detail: [
                "version": .int(row.version), "digest": .string(digest),
                "previous": current.map { .int($0.version) } ?? .null, "steps": .int(Int64(plan.steps.count)),
            ])
        return Applied(stored: row, created: true)
    }

    /// The latest version of plan `id`.
    package static func latest(_ db: Database, id: String) throws -> Stored? {
        try db.first(select + " WHERE id = ?1 ORDER BY version DESC LIMIT 1", [.text(id)], row)
    }

    /// A latest version's push trigger (`plan_triggers`).
    package struct PushTrigger: Sendable, Equatable {
        package var planID: String
        package var pattern: String
        package var input: String
        package var runAs: String
    }

    /// The triggers of pushes of `kind` (tag or branch) to `project`, by plan id.
    package static func pushTriggers(_ db: Database, project: String, kind: Plan.Input.Kind) throws -> [PushTrigger] {
        try db.query(
            """
            SELECT plan_id, pattern, input, run_as FROM plan_triggers WHERE project = ?1 AND ref_kind = ?2
            ORDER BY plan_id, position
            """, [.text(project), .text(kind.rawValue)]
        ) { PushTrigger(planID: $0.text(0), pattern: $0.text(1), input: $0.text(2), runAs: $0.text(3)) }
    }

    /// The plan a new run of `id` starts with: its latest version.
    /// - Throws: `.notFound` when no plan `id` was applied.
    package static func current(_ db: Database, id: String) throws -> Plan {
        guard let stored = try latest(db, id: id) else { throw DravenError.notFound(what: "no plan \(id)") }
        return try stored.plan()
    }

    /// Version `version` of plan `id`.
    package static func load(_ db: Database, id: String, version: Int64) throws -> Stored? {
        try db.first(select + " WHERE id = ?1 AND version = ?2", [.text(id), .int(version)], row)
    }

    /// The latest version of every plan, by id.
    package static func list(_ db: Database) throws -> [Stored] {
        try db.query(
            select + " p WHERE version = (SELECT max(version) FROM plans q WHERE q.id = p.id) ORDER BY id", [], row)
    }
}
