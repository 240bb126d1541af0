/// Owns the `audit` table: the tamper-evident audit trail. Each record's `hash` is BLAKE2b-256 over the previous
/// record's hash and this record's fields, so editing, deleting or reordering any record breaks
/// every hash after it (`draven audit verify`). Records are only ever appended, inside the
/// transaction whose decision they describe. A record written for a console page says so
/// (`detail.via = "console"`, `Database.auditVia`), as votes say where they came from.
package enum Audit {
    package static let genesis = String(repeating: "0", count: 64)

    package static func record(
        _ tx: Transaction, at: Int64, actor: String, action: String, subject: String,
        outcome: String = "ok", detail: JSONObject = [:]
    ) throws {
        let prev = try tx.db.first("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") { $0.text(0) } ?? genesis
        var detail = detail
        if let via = tx.db.auditVia, detail["via"] == nil { detail["via"] = .string(via) }
        let detailText = JSON.object(detail).serialized()
        let hash = digest(
            prev: prev, at: at, actor: actor, action: action, subject: subject, outcome: outcome,
            detail: detailText)
        try tx.db.run(
            """
            INSERT INTO audit (at, actor, action, subject, outcome, detail, prev_hash, hash)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            """,
            [
                .int(at), .text(actor), .text(action), .text(subject), .text(outcome), .text(detailText), .text(prev),
                .text(hash),
            ])
    }

    /// How many records the trail holds (`/metrics`): the trail is append-only and its ids are
    /// 1, 2, 3 …, so the last id, read from the end of the b-tree, not a count over every row.
    package static func count(_ db: Database) throws -> Int64 {
        try db.scalar("SELECT coalesce(max(id), 0) FROM audit") ?? 0
    }

    package static func digest(
        prev: String, at: Int64, actor: String, action: String, subject: String,
        outcome: String, detail: String
    ) -> String {
        // Length-prefixed fields, so no two different records serialize alike.
        var bytes: [UInt8] = []
        for field in [prev, String(at), actor, action, subject, outcome, detail] {
            bytes.append(contentsOf: Array(String(field.utf8.count).utf8))
            bytes.append(0x3a)
            bytes.append(contentsOf: Array(field.utf8))
        }
        return Sodium.hashHex(bytes)
    }

    /// Checks the whole chain (not against a checkpoint: see `AuditVerifier`). Returns nil when
    /// intact, else the id of the first bad record.
    package static func verify(_ db: Database) throws -> Int64? {
        var prev = genesis
        var bad: Int64?
        try walk(db, fromID: 0) { link in
            if bad == nil && (link.prevHash != prev || !link.sealed) { bad = link.id }
            prev = link.hash
        }
        return bad
    }

    /// One record as the chain check sees it: `sealed` when its hash is the digest of its own
    /// fields and `prevHash`; the caller checks that `prevHash` is the previous record's hash.
    package struct Link {
        package var id: Int64
        package var at: Int64
        package var prevHash: String
        package var hash: String
        package var sealed: Bool
    }

    /// Calls `body` with each record from id `fromID` on, in order, in one statement (one snapshot).
    package static func walk(_ db: Database, fromID: Int64, _ body: (Link) -> Void) throws {
        let sql =
            "SELECT id, at, actor, action, subject, outcome, detail, prev_hash, hash FROM audit "
            + "WHERE id >= ?1 ORDER BY id"
        _ = try db.query(sql, [.int(fromID)]) { row in
            let prev = row.text(7)
            let hash = row.text(8)
            let expected = digest(
                prev: prev, at: row.int(1), actor: row.text(2), action: row.text(3),
                subject: row.text(4), outcome: row.text(5), detail: row.text(6))
            body(Link(id: row.int(0), at: row.int(1), prevHash: prev, hash: hash, sealed: hash == expected))
        }
    }

    /// The records after id `after`, in order, as JSON objects (`draven audit export`).
    package static func export(_ db: Database, after: Int64, _ body: (JSON) -> Void) throws {
        let sql = "SELECT id, at, actor, action, subject, outcome, detail, hash FROM audit WHERE id > ?1 ORDER BY id"
        _ = try db.query(sql, [.int(after)]) { row in
            body(
                .object([
                    "id": .int(row.int(0)), "at": .string(Clock.rfc3339(row.int(1))), "actor": .string(row.text(2)),
                    "action": .string(row.text(3)), "subject": .string(row.text(4)), "outcome": .string(row.text(5)),
                    "detail": (try? JSON.parse(row.text(6))) ?? .null, "hash": .string(row.text(7)),
                ]))
        }
    }
}
