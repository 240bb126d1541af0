extension Locks {
    /// What is wrong with the locks (`draven doctor`): a lock held by a job that is missing, has
    /// ended or is not in a lock-holding state, belongs to another environment, carries another
    /// fencing token or has no lease; and a job in a lock-holding state (`JobState.holdsLock`)
    /// that does not hold its environment's lock with its own token — which also finds two such
    /// jobs in one environment, since the lock has one holder.
    package static func problems(_ db: Database) throws -> [(subject: String, message: String)] {
        var found: [(subject: String, message: String)] = []
        _ = try db.query(
            """
            SELECT l.environment_id, l.job_id, l.fencing_token, l.lease_until,
                   j.id, j.state, j.environment_id, j.fencing_token
            FROM locks l LEFT JOIN jobs j ON j.id = l.job_id WHERE l.job_id IS NOT NULL ORDER BY l.environment_id
            """
        ) { row in
            let subject = "environment/\(row.int(0))"
            let job = row.int(1)
            guard !row.isNull(4) else { return found.append((subject, "held by job \(job), which does not exist")) }
            let state = JobState(rawValue: row.text(5))
            if !(state?.holdsLock ?? false) {
                let ended = state?.isTerminal ?? false ? "has ended" : "does not hold locks"
                found.append((subject, "held by job \(job), which is \(row.text(5)) (\(ended))"))
            }
            if row.int(6) != row.int(0) { found.append((subject, "held by job \(job) of environment \(row.int(6))")) }
            if row.optionalInt(7) != row.int(2) {
                let carried = row.optionalInt(7).map(String.init) ?? "none"
                found.append((subject, "held with fencing token \(row.int(2)) but job \(job) carries \(carried)"))
            }
            if row.isNull(3) { found.append((subject, "held by job \(job) with no lease")) }
        }
        let holding = JobState.allCases.filter(\.holdsLock).map { "'\($0.rawValue)'" }.joined(separator: ", ")
        _ = try db.query(
            """
            SELECT j.id, j.state, j.environment_id, j.fencing_token, l.job_id, l.fencing_token FROM jobs j
            LEFT JOIN locks l ON l.environment_id = j.environment_id
            WHERE j.state IN (\(holding))
              AND (l.job_id IS NULL OR l.job_id != j.id OR l.fencing_token IS NOT j.fencing_token)
            ORDER BY j.id
            """
        ) { row in
            let job = row.int(0)
            let token = row.optionalInt(3).map(String.init) ?? "none"
            let holder = row.optionalInt(4).map { $0 == job ? "it, with token \(row.int(5))" : "job \($0)" } ?? "nobody"
            let why =
                "\(row.text(1)) with fencing token \(token) but environment \(row.int(2))'s lock is held "
                + "by \(holder)"
            found.append(("job/\(job)", why))
        }
        return found
    }
}
