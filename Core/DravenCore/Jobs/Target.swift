/// A live (not retired) project environment, by name. `Target` holds the reads of the
/// `projects` and `environments` tables outside the state machine (`ConfigApply` writes them).
package struct Target: Sendable {
    package var projectID: Int64
    package var environmentID: Int64

    /// - Throws: `DravenError.notFound` naming what is unknown.
    package static func find(_ db: Database, project: String, environment: String) throws -> Target {
        let pid = try Self.project(db, project)
        guard
            let eid = try db.scalar(
                "SELECT id FROM environments WHERE project_id = ?1 AND name = ?2 AND retired = 0",
                [.int(pid), .text(environment)])
        else {
            throw DravenError.notFound(what: "project \(project) has no environment \(environment)")
        }
        return Target(projectID: pid, environmentID: eid)
    }

    /// Every live environment: its id and its project's and its own names, ordered by them (`/metrics`).
    package static func environments(_ db: Database) throws -> [(id: Int64, project: String, environment: String)] {
        try db.query(
            """
            SELECT e.id, p.name, e.name FROM environments e JOIN projects p ON p.id = e.project_id
            WHERE e.retired = 0 AND p.retired = 0 ORDER BY p.name, e.name
            """
        ) { ($0.int(0), $0.text(1), $0.text(2)) }
    }

    /// A live project's id, by name.
    /// - Throws: `DravenError.notFound` when there is none.
    package static func project(_ db: Database, _ name: String) throws -> Int64 {
        guard let id = try db.scalar("SELECT id FROM projects WHERE name = ?1 AND retired = 0", [.text(name)]) else {
            throw DravenError.notFound(what: "no project \(name)")
        }
        return id
    }

    /// A project's `[notify]` settings (channels, webhook secrets' names), empty when unset.
    package static func notify(_ db: Database, projectID: Int64) throws -> JSONObject {
        try db.first("SELECT notify FROM projects WHERE id = ?1", [.int(projectID)]) {
            (try? JSON.parse($0.text(0)))?.objectValue ?? [:]
        } ?? [:]
    }
}
