/// Environment locks with fencing tokens. One row per environment; `fencing_token` only grows
/// (each acquisition takes the next value), so anything carrying an older token is stale.
/// All functions here take a `Transaction`: a lock changes only together with its job.
package enum Locks {
    package struct Holder: Sendable { package var jobID: Int64; package var token: Int64 }

    /// The current holder, if any.
    package static func holder(_ db: Database, environment: Int64) throws -> Holder? {
        try db.first("SELECT job_id, fencing_token FROM locks WHERE environment_id = ?1 AND job_id IS NOT NULL",
                     [.int(environment)]) { Holder(jobID: $0.int(0), token: $0.int(1)) }
    }

    /// Takes the lock for `job` if it is free. Returns the new fencing token, or nil when held.
    static func acquire(_ tx: Transaction, environment: Int64, job: Int64, leaseSeconds: Int64, now: Int64) throws -> Int64? {
        try tx.db.run("INSERT OR IGNORE INTO locks (environment_id, fencing_token) VALUES (?1, 0)", [.int(environment)])
        try tx.db.run("""
            UPDATE locks SET job_id = ?2, fencing_token = fencing_token + 1, acquired_at = ?3, lease_until = ?4
            WHERE environment_id = ?1 AND job_id IS NULL
            """, [.int(environment), .int(job), .int(now), .int(now + leaseSeconds)])
        guard tx.db.changes == 1 else { return nil }
        return try tx.db.scalar("SELECT fencing_token FROM locks WHERE environment_id = ?1", [.int(environment)])
    }

    /// Frees the lock if `job` holds it. Returns whether it did.
    static func release(_ tx: Transaction, environment: Int64, job: Int64) throws -> Bool {
        try tx.db.run("UPDATE locks SET job_id = NULL, acquired_at = NULL, lease_until = NULL WHERE environment_id = ?1 AND job_id = ?2",
                      [.int(environment), .int(job)])
        return tx.db.changes == 1
    }

    /// Every lock row with its environment, for the status API.
    package static func all(_ db: Database) throws -> [JSON] {
        try db.query("""
            SELECT p.name, e.name, l.job_id, l.fencing_token, l.acquired_at, l.lease_until, (SELECT count(*) FROM jobs q WHERE q.environment_id = l.environment_id AND q.state = 'queued')
            FROM locks l JOIN environments e ON e.id = l.environment_id JOIN projects p ON p.id = e.project_id
            ORDER BY p.name, e.name
            """) { row in
            JSON.object([
                "project": .string(row.text(0)), "environment": .string(row.text(1)),
                "held": .bool(!row.isNull(2)), "job_id": row.optionalInt(2).map(JSON.int) ?? .null,
                "fencing_token": .int(row.int(3)),
                "acquired_at": row.optionalInt(4).map { .string(Clock.rfc3339($0)) } ?? .null,
                "lease_until": row.optionalInt(5).map { .string(Clock.rfc3339($0)) } ?? .null,
                "queued": .int(row.int(6)),
            ])
        }
    }
}
