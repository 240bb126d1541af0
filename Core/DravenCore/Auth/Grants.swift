/// Who may do what where. A grant names a person or a group, a project (or `*`), an
/// environment (or `*`) and one action. `metrics` (the store-wide `GET /metrics`) is granted on
/// every project (`project = "*"`): its numbers cover them all.
package enum Action: String, Sendable, CaseIterable {
    case deploy, approve, rollback, read, metrics
}

/// Reads the `grants`, `group_members` and `person_groups` tables (`ConfigApply` writes them).
package enum Grants {
    /// The one rule of a grant matching: `grants g` has `action` on the project and environment
    /// named by the SQL expressions given, for `person` or a group they are in. `allows` and
    /// `environments` both use it, so a page's list and a route's check agree.
    private static func matching(action: String, project: String, environment: String, person: String) -> String {
        """
        g.action = \(action) AND (g.project = '*' OR g.project = \(project))
          AND (g.environment = '*' OR g.environment = \(environment))
          AND (g.person_id = \(person)
               OR g.group_id IN (SELECT group_id FROM group_members WHERE person_id = \(person)))
        """
    }

    package static func allows(
        _ db: Database, person: Int64, action: Action, project: String,
        environment: String
    ) throws -> Bool {
        try db.scalar(
            "SELECT 1 FROM grants g WHERE "
                + matching(action: "?1", project: "?2", environment: "?3", person: "?4") + " LIMIT 1",
            [.text(action.rawValue), .text(project), .text(environment), .int(person)]) != nil
    }

    /// Every environment on which `person` holds `action`, by project and name, in one query:
    /// what the console's lists filter by. Retired ones only with `retired` (their jobs and audit
    /// records are still read; nobody deploys to them).
    package static func environments(_ db: Database, person: Int64, action: Action, retired: Bool = false) throws
        -> [(id: Int64, project: String, environment: String)]
    {
        try db.query(
            """
            SELECT e.id, p.name, e.name FROM environments e JOIN projects p ON p.id = e.project_id
            WHERE (?3 OR (e.retired = 0 AND p.retired = 0)) AND EXISTS (SELECT 1 FROM grants g WHERE
            """ + " " + matching(action: "?1", project: "p.name", environment: "e.name", person: "?2")
                + ") ORDER BY p.name, e.name",
            [.text(action.rawValue), .int(person), .bool(retired)]
        ) { (id: $0.int(0), project: $0.text(1), environment: $0.text(2)) }
    }

    /// - Throws: `DravenError.forbidden` unless a grant allows it.
    package static func require(
        _ db: Database, _ principal: Principal, _ action: Action, project: String,
        environment: String
    ) throws {
        guard
            try allows(
                db, person: principal.personID, action: action, project: project,
                environment: environment)
        else {
            throw DravenError.forbidden(action: action.rawValue, project: project, environment: environment)
        }
    }

    /// `action` on a job, for a route that names the job by its id. A caller who may not even read
    /// the job's environment is answered exactly as for a job that does not exist (404, the same
    /// detail: no project or environment named), so job ids do not tell outsiders what exists
    /// where; one who may read it but not do `action` gets 403.
    /// - Throws: `DravenError.notFound`, `.forbidden`.
    package static func require(_ db: Database, _ principal: Principal, _ action: Action, job: Job) throws {
        try require(action, job: job) {
            try allows(db, person: principal.personID, action: $0, project: job.project, environment: job.environment)
        }
    }

    /// The decision of `require(_:_:_:job:)` over `allows` (whether the caller holds an action on
    /// the job's environment), for callers that read grants once for many jobs (`Approvals.Checks`).
    /// - Throws: `DravenError.notFound`, `.forbidden`.
    package static func require(_ action: Action, job: Job, allows: (Action) throws -> Bool) throws {
        if try allows(action) { return }
        let readable = try action != .read && allows(.read)
        guard readable else { throw Job.unknown(job.id) }
        throw DravenError.forbidden(action: action.rawValue, project: job.project, environment: job.environment)
    }

    /// Whether a group of this name is configured (a plan's approval step names groups).
    package static func groupExists(_ db: Database, _ name: String) throws -> Bool {
        try db.scalar("SELECT 1 FROM person_groups WHERE name = ?1", [.text(name)]) != nil
    }

    /// Whether `person` is a member of any of `groups` (by name).
    package static func isMember(_ db: Database, person: Int64, ofAny groups: [String]) throws -> Bool {
        try db.scalar(
            """
            SELECT 1 FROM group_members gm JOIN person_groups g ON g.id = gm.group_id
            WHERE gm.person_id = ?1 AND g.name IN (SELECT value FROM json_each(?2)) LIMIT 1
            """, [.int(person), .text(JSON.array(groups.map(JSON.string)).serialized())]) != nil
    }

    /// `GET /metrics`: a `metrics` grant on every project.
    /// - Throws: `DravenError.forbidden`.
    package static func requireMetrics(_ db: Database, _ principal: Principal) throws {
        try require(db, principal, .metrics, project: "*", environment: "*")
    }
}
