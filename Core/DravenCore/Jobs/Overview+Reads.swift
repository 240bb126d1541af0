/// The reads the console's overview (`Overview`) is built from: each owner's SQL, each one query
/// over all of a page's environments at once (not one per environment), so a page costs the same
/// few statements whatever its length.
extension Job {
    /// Every job not yet ended (pending, awaiting approval, queued, dispatching, running), oldest
    /// first (the `jobs_state` index).
    /// - Parameter environments: only jobs of these environments (the overview's page).
    package static func open(_ db: Database, environments: [Int64]) throws -> [Job] {
        try db.query(
            select + """
                 WHERE j.environment_id IN (SELECT value FROM json_each(?1))
                   AND j.state IN ('pending', 'awaiting_approval', 'queued', 'dispatching', 'running') ORDER BY j.id
                """, [.text(idList(environments))], Job.init(row:))
    }

    static func idList(_ ids: [Int64]) -> String { JSON.array(ids.map(JSON.int)).serialized() }

    /// Each environment's newest ended job. One index seek per environment and terminal state
    /// (`jobs_env_state`), not a scan of the history.
    package static func lastEnded(_ db: Database, environments: [Int64]) throws -> [Job] {
        let states = JobState.allCases.filter(\.isTerminal)
        let newest = states.map {
            "coalesce((SELECT max(x.id) FROM jobs x WHERE x.environment_id = e.id AND x.state = '\($0.rawValue)'), 0)"
        }
        return try db.query(
            select + " WHERE j.id IN (SELECT max(\(newest.joined(separator: ", "))) FROM environments e "
                + "WHERE e.id IN (SELECT value FROM json_each(?1)))", [.text(idList(environments))], Job.init(row:))
    }

    /// The newest heartbeat of a job holding a lock: part of the console's state version (heartbeats
    /// write no job event).
    package static func lastHeartbeat(_ db: Database) throws -> Int64 {
        try db.scalar("SELECT max(heartbeat_at) FROM jobs WHERE state IN ('dispatching', 'running')") ?? 0
    }
}

extension JobEvent {
    /// The newest history entry's id: grows with every change to any job.
    package static func lastID(_ db: Database) throws -> Int64 {
        try db.scalar("SELECT max(id) FROM job_events") ?? 0
    }
}

extension Locks {
    /// A held lock: its job, fencing token and lease end.
    package struct Held: Sendable {
        package var jobID: Int64
        package var fencingToken: Int64
        package var leaseUntil: Int64?
    }

    /// Every held lock, by environment id.
    package static func held(_ db: Database) throws -> [Int64: Held] {
        var out: [Int64: Held] = [:]
        for (env, held) in try db.query(
            "SELECT environment_id, job_id, fencing_token, lease_until FROM locks WHERE job_id IS NOT NULL", [],
            { ($0.int(0), Held(jobID: $0.int(1), fencingToken: $0.int(2), leaseUntil: $0.optionalInt(3))) })
        {
            out[env] = held
        }
        return out
    }
}

extension Releases {
    /// Every environment's live release with the handle of who asked for it, by environment id.
    package static func liveAll(_ db: Database) throws -> [Int64: (release: Release, by: String)] {
        var out: [Int64: (release: Release, by: String)] = [:]
        let sql =
            "SELECT r.id, r.job_id, j.kind, r.ref, r.ref_kind, r.sha, r.release_id, r.live_from, r.live_until, "
            + "pe.handle, r.environment_id FROM releases r JOIN jobs j ON j.id = r.job_id "
            + "JOIN people pe ON pe.id = j.requested_by WHERE r.live_until IS NULL"
        for (env, live) in try db.query(sql, [], { ($0.int(10), (release: row($0), by: $0.text(9))) }) {
            out[env] = live
        }
        return out
    }
}

extension Audit {
    /// The newest record's id.
    package static func lastID(_ db: Database) throws -> Int64 {
        try db.scalar("SELECT max(id) FROM audit") ?? 0
    }
}

extension ConfigApply {
    /// The applied configuration's version (0 before the first `draven apply`).
    package static func currentVersion(_ db: Database) throws -> Int64 {
        try db.scalar("SELECT max(id) FROM config_versions") ?? 0
    }
}
