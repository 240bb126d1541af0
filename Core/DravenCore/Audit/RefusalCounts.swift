/// Refused requests from clients that proved no identity (no API token, no verified chat user):
/// counted per (client address, function, problem type, hour) instead of one chained audit record
/// each, so an anonymous flood grows the store by at most one small row per address, function,
/// problem type and hour. The chain keeps one record per refusal of an identified caller, where
/// who was refused is the point of the record. Owns the `refusal_counts` table.
package enum RefusalCounts {
    package static let bucketSeconds: Int64 = 3600
    /// The most bytes stored of any one field taken from a request (path, detail, address, …).
    package static let fieldLimit = 256
    /// How long counters are kept: each `draven sweep` pass forgets older hours.
    package static let retention: Int64 = 30 * 86400

    package static func record(
        _ tx: Transaction, at: Int64, client: String, function: String, problem: Problem,
        path: String
    ) throws {
        let base = Problem.typeBase
        let type = problem.type.hasPrefix(base) ? String(problem.type.dropFirst(base.count)) : problem.type
        try tx.db.run(
            """
            INSERT INTO refusal_counts
              (client, function, problem, bucket, status, first_at, last_at, count, last_path, last_detail)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8)
            ON CONFLICT (client, function, problem, bucket) DO UPDATE SET count = count + 1,
              last_at = max(last_at, excluded.last_at), last_path = excluded.last_path,
              last_detail = excluded.last_detail
            """,
            [
                .text(client.capped(64).text), .text(function), .text(type.capped(64).text),
                .int(at - at % bucketSeconds),
                .int(Int64(problem.status)), .int(at), .text(path.capped(fieldLimit).text),
                .text(problem.detail.capped(fieldLimit).text),
            ])
    }

    /// Deletes the counters of hours older than `retention`. Returns how many went; a pass with
    /// nothing to forget only reads the index.
    @discardableResult
    package static func prune(_ db: Database, now: Int64) throws -> Int {
        let before = now - retention
        let due = try db.scalar("SELECT 1 FROM refusal_counts WHERE bucket < ?1 LIMIT 1", [.int(before)]) != nil
        guard due else { return 0 }
        return try db.immediate { tx in
            try tx.db.run("DELETE FROM refusal_counts WHERE bucket < ?1", [.int(before)])
            return tx.db.changes
        }
    }

    /// A request that changed nothing else, as `/metrics` counts it (`refusal_totals`): a provider
    /// webhook refused (`project` '' when refused before its integration was known) or repeated (a
    /// delivery already taken), or a request refused for a stale fencing token of a job of
    /// `environment`. Refusals are written by `Context.countRefusal` in the refusal's own
    /// transaction; a repeat in the dedupe's.
    package enum Counted: Sendable {
        case refusedWebhook(provider: String, project: String)
        case repeatedWebhook(provider: String, project: String)
        case staleToken(environment: Int64)
    }

    package static func countForMetrics(_ tx: Transaction, _ counted: Counted) throws {
        let (what, provider, project, environment): (String, String, String, Int64) =
            switch counted {
            case .refusedWebhook(let provider, let project): ("webhook-refused", provider, project, 0)
            case .repeatedWebhook(let provider, let project): ("webhook-duplicate", provider, project, 0)
            case .staleToken(let environment): ("stale-fencing-token", "", "", environment)
            }
        try tx.db.run(
            """
            INSERT INTO refusal_totals (what, provider, project, environment_id, count) VALUES (?1, ?2, ?3, ?4, 1)
            ON CONFLICT DO UPDATE SET count = count + 1
            """, [.text(what), .text(provider), .text(project), .int(environment)])
    }

    /// A stale fencing token refused for job `job`, counted on its environment.
    package static func countStaleToken(_ tx: Transaction, job: Int64) throws {
        guard let environment = try Job.find(tx.db, id: job)?.environmentID else { return }
        try countForMetrics(tx, .staleToken(environment: environment))
    }

    /// Every `refusal_totals` row (`/metrics`).
    package static func totals(_ db: Database) throws
        -> [(what: String, provider: String, project: String, environment: Int64, count: Int64)]
    {
        try db.query("SELECT what, provider, project, environment_id, count FROM refusal_totals ORDER BY 1, 2, 3, 4") {
            ($0.text(0), $0.text(1), $0.text(2), $0.int(3), $0.int(4))
        }
    }

    /// The counters whose hour ends after `since`, newest first, as JSON objects.
    package static func list(_ db: Database, since: Int64 = 0) throws -> [JSON] {
        try db.query(
            """
            SELECT client, function, problem, status, bucket, first_at, last_at, count, last_path, last_detail
            FROM refusal_counts WHERE last_at >= ?1 ORDER BY bucket DESC, count DESC
            """, [.int(since)]
        ) { row in
            .object([
                "client": .string(row.text(0)), "function": .string(row.text(1)), "problem": .string(row.text(2)),
                "status": .int(row.int(3)), "hour": .string(Clock.rfc3339(row.int(4))),
                "first_at": .string(Clock.rfc3339(row.int(5))), "last_at": .string(Clock.rfc3339(row.int(6))),
                "count": .int(row.int(7)), "last_path": .string(row.text(8)), "last_detail": .string(row.text(9)),
            ])
        }
    }
}

extension String {
    /// At most `limit` bytes of UTF-8, cut at a character boundary and marked with `…`, and
    /// whether anything was cut.
    package func capped(_ limit: Int) -> (text: String, truncated: Bool) {
        guard utf8.count > limit else { return (self, false) }
        var end = utf8.index(utf8.startIndex, offsetBy: limit - 3)  // room for the 3-byte "…"
        while end > utf8.startIndex, UTF8.isContinuation(utf8[end]) { end = utf8.index(before: end) }
        return (String(self[..<end]) + "…", true)
    }
}
