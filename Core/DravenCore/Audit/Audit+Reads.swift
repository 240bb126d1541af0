/// Reads of the `audit` table for the console: the records about one subject (a job's timeline)
/// and pages of the trail filtered by what the reader may see (`AuditPage`).
extension Audit {
    /// One audit record, with what it is about when that names something that exists.
    package struct Record: Sendable {
        package var id: Int64
        package var at: Int64
        package var actor: String
        package var action: String
        package var subject: String
        package var outcome: String
        /// JSON text.
        package var detail: String
        /// The environment the subject names (`<project>/<environment>`, or `job/<id>`: the job's).
        package var environmentID: Int64?
        package var project: String?
        package var environment: String?
        /// The job, when the subject is `job/<id>` of a job that exists.
        package var jobID: Int64?
    }

    static let recordColumns = "a.id, a.at, a.actor, a.action, a.subject, a.outcome, a.detail"

    static func record(_ row: Statement) -> Record {
        Record(
            id: row.int(0), at: row.int(1), actor: row.text(2), action: row.text(3), subject: row.text(4),
            outcome: row.text(5), detail: row.text(6), environmentID: row.optionalInt(7), project: row.optionalText(8),
            environment: row.optionalText(9), jobID: row.optionalInt(10))
    }

    /// The records whose subject is `subject`, oldest first (the `audit_subject` index).
    package static func about(_ db: Database, subject: String) throws -> [Record] {
        try db.query(
            "SELECT " + recordColumns + ", NULL, NULL, NULL, NULL FROM audit a WHERE a.subject = ?1 ORDER BY a.id",
            [.text(subject)], record)
    }

    /// The newest refused request about each environment (subject `<project>/<environment>`: a
    /// deploy or rollback request the policy, a grant or the lock refused) among the `window`
    /// newest records, since `since`: what the overview shows as why nothing happened. Bounded:
    /// one read of at most `window` records, whatever the trail's length.
    package static func recentRefusals(_ db: Database, since: Int64, window: Int = 500) throws -> [String: Record] {
        var newest: [String: Record] = [:]
        let rows = try db.query(
            """
            SELECT \(recordColumns), NULL, NULL, NULL, NULL
            FROM (SELECT id, at, actor, action, subject, outcome, detail FROM audit ORDER BY id DESC LIMIT ?1) a
            WHERE a.outcome = 'refused' AND a.at >= ?2 AND instr(a.subject, '/') > 0 AND a.subject NOT GLOB 'job/*'
            ORDER BY a.id DESC
            """, [.int(Int64(window)), .int(since)], record)
        for row in rows where newest[row.subject] == nil { newest[row.subject] = row }
        return newest
    }

    /// What a page of the trail asks for. `action` matches exactly, or as a prefix when it ends
    /// with `.` (`job.` is every job move).
    package struct Query: Sendable {
        /// Only records with an id below this (the previous page's `next`); nil: from the newest.
        package var before: Int64?
        package var actor: String?
        package var action: String?
        package var project: String?
        package var limit: Int
        /// At most this many records are read (newest first from `before`) to fill the page.
        package var window: Int
        /// The reader: what they may see (see `page`).
        package var readerHandle: String
        package var readableEnvironments: Set<Int64>

        package init(
            before: Int64?, actor: String?, action: String?, project: String?, limit: Int, window: Int,
            readerHandle: String, readableEnvironments: Set<Int64>
        ) {
            self.before = before
            self.actor = actor
            self.action = action
            self.project = project
            self.limit = limit
            self.window = window
            self.readerHandle = readerHandle
            self.readableEnvironments = readableEnvironments
        }
    }

    /// One page of the trail, newest first: the records among the `window` records before
    /// `before` that match the filters and that the reader may see — records about an
    /// environment in `readableEnvironments` (a subject `<project>/<environment>`, or `job/<id>`
    /// of a job there), and records about no existing environment whose actor is the reader.
    /// - Returns: the page, how many records the window read, and the lowest id it read (nil
    ///   when it read none: the start of the trail).
    package static func page(_ db: Database, _ q: Query) throws -> (records: [Record], read: Int, lowest: Int64?) {
        let before = SQLValue.int(q.before ?? Int64.max)
        let window = SQLValue.int(Int64(q.window))
        let readable = JSON.array(q.readableEnvironments.sorted().map(JSON.int)).serialized()
        let prefix = q.action?.hasSuffix(".") ?? false
        let records = try db.query(
            """
            SELECT \(recordColumns), e.id, p.name, e.name, j.id
            FROM (SELECT id, at, actor, action, subject, outcome, detail FROM audit WHERE id < ?1
                  ORDER BY id DESC LIMIT ?2) a
            LEFT JOIN jobs j ON a.subject GLOB 'job/[0-9]*' AND j.id = CAST(substr(a.subject, 5) AS INTEGER)
            LEFT JOIN environments e ON e.id = coalesce(j.environment_id, (
                SELECT e2.id FROM environments e2 JOIN projects p2 ON p2.id = e2.project_id
                WHERE instr(a.subject, '/') > 0 AND p2.name = substr(a.subject, 1, instr(a.subject, '/') - 1)
                  AND e2.name = substr(a.subject, instr(a.subject, '/') + 1)))
            LEFT JOIN projects p ON p.id = e.project_id
            WHERE (e.id IN (SELECT value FROM json_each(?3)) OR (e.id IS NULL AND a.actor = ?4))
              AND (?5 IS NULL OR a.actor = ?5)
              AND (?6 IS NULL OR a.action = ?6 OR (?7 AND substr(a.action, 1, length(?6)) = ?6))
              AND (?8 IS NULL OR p.name = ?8)
            ORDER BY a.id DESC LIMIT ?9
            """,
            [
                before, window, .text(readable), .text(q.readerHandle), .text(q.actor), .text(q.action),
                .bool(prefix), .text(q.project), .int(Int64(q.limit)),
            ], record)
        let (read, lowest) =
            try db.first(
                "SELECT count(*), min(id) FROM (SELECT id FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2)",
                [before, window]
            ) { (Int($0.int(0)), $0.optionalInt(1)) } ?? (0, nil)
        return (records, read, lowest)
    }
}
