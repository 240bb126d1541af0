/// A live (not retired) project environment, by name.
package struct Target {
    package var projectID: Int64
    package var environmentID: Int64

    /// - Throws: `DravenError.notFound` naming what is unknown.
    package static func find(_ db: Database, project: String, environment: String) throws -> Target {
        guard let pid = try db.scalar("SELECT id FROM projects WHERE name = ?1 AND retired = 0", [.text(project)]) else {
            throw DravenError.notFound(what: "no project \(project)")
        }
        guard let eid = try db.scalar("SELECT id FROM environments WHERE project_id = ?1 AND name = ?2 AND retired = 0",
                                      [.int(pid), .text(environment)]) else {
            throw DravenError.notFound(what: "project \(project) has no environment \(environment)")
        }
        return Target(projectID: pid, environmentID: eid)
    }
}
