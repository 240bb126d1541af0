/// Who may do what where. A grant names a person or a group, a project (or `*`), an
/// environment (or `*`) and one action.
package enum Action: String, Sendable, CaseIterable {
    case deploy, approve, rollback, read
}

package enum Grants {
    package static func allows(_ db: Database, person: Int64, action: Action, project: String, environment: String) throws -> Bool {
        try db.scalar(
            """
            SELECT 1 FROM grants
            WHERE action = ?1 AND (project = '*' OR project = ?2) AND (environment = '*' OR environment = ?3)
              AND (person_id = ?4 OR group_id IN (SELECT group_id FROM group_members WHERE person_id = ?4))
            LIMIT 1
            """, [.text(action.rawValue), .text(project), .text(environment), .int(person)]) != nil
    }

    /// - Throws: `DravenError.forbidden` unless a grant allows it.
    package static func require(_ db: Database, _ principal: Principal, _ action: Action, project: String, environment: String) throws {
        guard try allows(db, person: principal.personID, action: action, project: project, environment: environment) else {
            throw DravenError.forbidden(action: action.rawValue, project: project, environment: environment)
        }
    }
}
