/// Who may do what where. A grant names a person or a group, a project (or `*`), an
/// environment (or `*`) and one action. `metrics` (the store-wide `GET /metrics`) is granted on
/// every project (`project = "*"`): its numbers cover them all.
package enum Action: String, Sendable, CaseIterable {
    case deploy, approve, rollback, read, metrics
}

/// Reads the `grants`, `group_members` and `person_groups` tables (`ConfigApply` writes them).
package enum Grants {
    package static func allows(
        _ db: Database, person: Int64, action: Action, project: String,
        environment: String
    ) throws -> Bool {
        try db.scalar(
            """
            SELECT 1 FROM grants
            WHERE action = ?1 AND (project = '*' OR project = ?2) AND (environment = '*' OR environment = ?3)
              AND (person_id = ?4 OR group_id IN (SELECT group_id FROM group_members WHERE person_id = ?4))
            LIMIT 1
            """, [.text(action.rawValue), .text(project), .text(environment), .int(person)]) != nil
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
        let (person, project, environment) = (principal.personID, job.project, job.environment)
        if try allows(db, person: person, action: action, project: project, environment: environment) { return }
        let readable =
            try action != .read
            && allows(db, person: person, action: .read, project: project, environment: environment)
        guard readable else { throw Job.unknown(job.id) }
        throw DravenError.forbidden(action: action.rawValue, project: job.project, environment: job.environment)
    }

    /// `GET /metrics`: a `metrics` grant on every project.
    /// - Throws: `DravenError.forbidden`.
    package static func requireMetrics(_ db: Database, _ principal: Principal) throws {
        try require(db, principal, .metrics, project: "*", environment: "*")
    }
}
