/// A job row with its project and environment names.
package struct Job: Sendable {
    package var id: Int64
    package var kind: JobKind
    package var projectID: Int64
    package var project: String
    package var environmentID: Int64
    package var environment: String
    package var ref: String
    package var refKind: String
    package var sha: String?
    package var reason: String
    package var state: JobState
    package var requestedBy: String
    package var requestedByID: Int64
    package var policyVersion: Int64
    package var fencingToken: Int64?
    package var runID: String?
    package var parentJobID: Int64?
    package var createdAt: Int64
    package var updatedAt: Int64
    package var logURL: String?
    package var heartbeatAt: Int64?
    /// The runner's last progress (JSON text), from its heartbeats.
    package var progress: String?
    package var toRelease: Int64?
    /// The provider's page of the run (the notifications' link when there is no log).
    package var runURL: String?

    static let select = """
        SELECT j.id, j.kind, j.project_id, p.name, j.environment_id, e.name, j.ref, j.ref_kind, j.sha, j.reason, j.state,
               pe.handle, j.policy_version, j.fencing_token, j.run_id, j.parent_job_id, j.created_at, j.updated_at,
               j.log_url, j.heartbeat_at, j.progress, j.to_release, j.requested_by, j.run_url
        FROM jobs j JOIN projects p ON p.id = j.project_id JOIN environments e ON e.id = j.environment_id
        JOIN people pe ON pe.id = j.requested_by
        """

    init(row: Statement) {
        id = row.int(0); kind = JobKind(rawValue: row.text(1)) ?? .deploy; projectID = row.int(2); project = row.text(3)
        environmentID = row.int(4); environment = row.text(5); ref = row.text(6); refKind = row.text(7)
        sha = row.optionalText(8); reason = row.text(9); state = JobState(rawValue: row.text(10)) ?? .failed
        requestedBy = row.text(11); policyVersion = row.int(12); fencingToken = row.optionalInt(13)
        runID = row.optionalText(14); parentJobID = row.optionalInt(15); createdAt = row.int(16); updatedAt = row.int(17)
        logURL = row.optionalText(18); heartbeatAt = row.optionalInt(19); progress = row.optionalText(20); toRelease = row.optionalInt(21)
        requestedByID = row.int(22); runURL = row.optionalText(23)
    }

    package static func find(_ db: Database, id: Int64) throws -> Job? {
        try db.first(select + " WHERE j.id = ?1", [.int(id)], Job.init(row:))
    }

    /// - Throws: `DravenError.notFound` when there is no such job.
    package static func require(_ db: Database, id: Int64) throws -> Job {
        guard let job = try find(db, id: id) else { throw unknown(id) }
        return job
    }

    /// What a caller is told about a job id that names no job (or one they may not read).
    package static func unknown(_ id: Int64) -> DravenError { .notFound(what: "no job \(id)") }

    /// The most recent jobs, newest first, optionally filtered.
    package static func list(_ db: Database, project: String?, environment: String?, state: String?, limit: Int) throws -> [Job] {
        try db.query(select + """
             WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR e.name = ?2) AND (?3 IS NULL OR j.state = ?3)
             ORDER BY j.id DESC LIMIT ?4
            """, [.text(project), .text(environment), .text(state), .int(Int64(limit))], Job.init(row:))
    }

    package var json: JSONObject {
        var o: JSONObject = [
            "id": .int(id), "kind": .string(kind.rawValue), "project": .string(project),
            "environment": .string(environment),
            "ref": .string(ref), "ref_kind": .string(refKind), "sha": sha.map(JSON.string) ?? .null,
            "reason": .string(reason), "state": .string(state.rawValue), "requested_by": .string(requestedBy),
            "policy_version": .int(policyVersion), "fencing_token": fencingToken.map(JSON.int) ?? .null,
            "run_id": runID.map(JSON.string) ?? .null,
            "created_at": .string(Clock.rfc3339(createdAt)), "updated_at": .string(Clock.rfc3339(updatedAt)),
        ]
        if let parentJobID { o["parent_job_id"] = .int(parentJobID) }
        if let toRelease { o["to_release"] = .int(toRelease) }
        if let logURL { o["log_url"] = .string(logURL) }
        if let heartbeatAt { o["heartbeat_at"] = .string(Clock.rfc3339(heartbeatAt)) }
        if let progress, let value = try? JSON.parse(progress) { o["progress"] = value }
        o["links"] = .object(["self": .string("/api/v1/jobs/\(id)")])
        return o
    }
}

/// One entry of a job's history.
package struct JobEvent: Sendable {
    package var id: Int64
    package var at: Int64
    package var event: String
    package var from: String?
    package var to: String?
    package var actor: String
    package var detail: String

    package static func list(_ db: Database, job: Int64) throws -> [JobEvent] {
        try db.query("SELECT id, at, event, from_state, to_state, actor, detail FROM job_events WHERE job_id = ?1 ORDER BY id", [.int(job)]) {
            JobEvent(id: $0.int(0), at: $0.int(1), event: $0.text(2), from: $0.optionalText(3), to: $0.optionalText(4),
                     actor: $0.text(5), detail: $0.text(6))
        }
    }

    package var json: JSON {
        .object([
            "id": .int(id), "at": .string(Clock.rfc3339(at)), "event": .string(event),
            "from": from.map(JSON.string) ?? .null, "to": to.map(JSON.string) ?? .null, "actor": .string(actor),
            "detail": (try? JSON.parse(detail)) ?? .object([:]),
        ])
    }
}
