/// Owns the `locks` table: environment locks with fencing tokens. One row per environment; `fencing_token` only grows
/// (each acquisition takes the next value), so anything carrying an older token is stale.
/// All functions here take a `Transaction`: a lock changes only together with its job.
package enum Locks {
    package struct Holder: Sendable {
        package var jobID: Int64
        package var token: Int64
    }

    /// The current holder, if any.
    package static func holder(_ db: Database, environment: Int64) throws -> Holder? {
        try db.first(
            "SELECT job_id, fencing_token FROM locks WHERE environment_id = ?1 AND job_id IS NOT NULL",
            [.int(environment)]
        ) { Holder(jobID: $0.int(0), token: $0.int(1)) }
    }

    /// An environment's lock row as a page shows it: who holds it (nil while free), the fencing
    /// token (the holder's, or the last one given out), since when, and until when the lease runs.
    package struct Lock: Sendable, Equatable {
        package var jobID: Int64?
        package var fencingToken: Int64
        package var acquiredAt: Int64?
        package var leaseUntil: Int64?
    }

    /// The lock row of `environment`, or nil when it was never taken.
    package static func lock(_ db: Database, environment: Int64) throws -> Lock? {
        try db.first(
            "SELECT job_id, fencing_token, acquired_at, lease_until FROM locks WHERE environment_id = ?1",
            [.int(environment)]
        ) {
            Lock(
                jobID: $0.optionalInt(0), fencingToken: $0.int(1), acquiredAt: $0.optionalInt(2),
                leaseUntil: $0.optionalInt(3))
        }
    }

    /// The end of the lease `job` holds (or held) the lock with under `token`, if that is
    /// still the lock's token: a heartbeat refused with it came after its lease ran out.
    /// Whether job `job` holds its environment's lock with fencing token `token`.
    package static func holds(_ db: Database, job: Int64, token: Int64) throws -> Bool {
        try db.scalar("SELECT 1 FROM locks WHERE job_id = ?1 AND fencing_token = ?2", [.int(job), .int(token)]) != nil
    }

    package static func leaseUntil(_ db: Database, job: Int64, token: Int64) throws -> Int64? {
        try db.scalar(
            "SELECT lease_until FROM locks WHERE job_id = ?1 AND fencing_token = ?2",
            [.int(job), .int(token)])
    }

    /// Every lock row as `/metrics` reads it: its environment, whether held, since when, and until
    /// when its lease runs.
    package static func gauges(_ db: Database) throws
        -> [(environment: Int64, held: Bool, acquiredAt: Int64?, leaseUntil: Int64?)]
    {
        try db.query("SELECT environment_id, job_id IS NOT NULL, acquired_at, lease_until FROM locks") {
            ($0.int(0), $0.int(1) != 0, $0.optionalInt(2), $0.optionalInt(3))
        }
    }

    /// Takes the lock for `job` if it is free. Returns the new fencing token, or nil when held.
    static func acquire(_ tx: Transaction, environment: Int64, job: Int64, leaseSeconds: Int64, now: Int64) throws
        -> Int64?
    {
        try tx.db.run(
            "INSERT INTO locks (environment_id, fencing_token) VALUES (?1, 0) ON CONFLICT DO NOTHING",
            [.int(environment)])
        return try tx.db.first(
            """
            UPDATE locks SET job_id = ?2, fencing_token = fencing_token + 1, acquired_at = ?3, lease_until = ?4
            WHERE environment_id = ?1 AND job_id IS NULL
            RETURNING fencing_token
            """, [.int(environment), .int(job), .int(now), .int(now + leaseSeconds)]
        ) { $0.int(0) }
    }

    /// Frees the lock if `job` holds it. Returns whether it did.
    static func release(_ tx: Transaction, environment: Int64, job: Int64) throws -> Bool {
        try tx.db.first(
            """
            UPDATE locks SET job_id = NULL, acquired_at = NULL, lease_until = NULL
            WHERE environment_id = ?1 AND job_id = ?2 RETURNING environment_id
            """, [.int(environment), .int(job)]
        ) { _ in true } ?? false
    }

    /// Restarts the lease of the lock `job` holds: the environment's policy lease from `now`.
    static func renew(_ tx: Transaction, job: Int64, now: Int64) throws {
        try tx.db.run(
            """
            UPDATE locks SET lease_until = ?2 + (SELECT lease_s FROM policies WHERE environment_id =
            locks.environment_id)
            WHERE job_id = ?1
            """, [.int(job), .int(now)])
    }

    /// A heartbeat: extends the lease of the lock `job` holds with fencing token `token` to the
    /// policy's lease from `now` (never shortens it). Refused — returns nil, changes nothing —
    /// unless the job holds the lock with exactly that token and its lease has not run out (a
    /// lease that ran out is the sweep's to end). One statement, on the `locks_job` index.
    /// - Returns: the new end of the lease.
    package static func extend(_ tx: Transaction, job: Int64, token: Int64, now: Int64) throws -> Int64? {
        try tx.db.first(
            """
            UPDATE locks SET lease_until = max(lease_until, ?3 + (SELECT lease_s FROM policies WHERE environment_id =
            locks.environment_id))
            WHERE job_id = ?1 AND fencing_token = ?2 AND lease_until >= ?3
            RETURNING lease_until
            """, [.int(job), .int(token), .int(now)]
        ) { $0.int(0) }
    }

    /// Locks whose lease ran out while their job was running: what sweep times out.
    static func expired(_ db: Database, now: Int64) throws -> [Holder] {
        try db.query(
            """
            SELECT l.job_id, l.fencing_token FROM locks l JOIN jobs j ON j.id = l.job_id
            WHERE l.job_id IS NOT NULL AND l.lease_until < ?1 AND j.state = 'running' ORDER BY l.lease_until
            """, [.int(now)]
        ) { Holder(jobID: $0.int(0), token: $0.int(1)) }
    }

    /// When the lease of `holder` ran out and when its job last sent a heartbeat, if `holder`
    /// still holds the lock with a lease that ended before `now` and its job is running
    /// (sweep's re-check under the write lock).
    static func lapsed(_ db: Database, _ holder: Holder, now: Int64) throws -> (until: Int64, heartbeat: Int64?)? {
        try db.first(
            """
            SELECT l.lease_until, j.heartbeat_at FROM locks l JOIN jobs j ON j.id = l.job_id
            WHERE l.job_id = ?1 AND l.fencing_token = ?2 AND l.lease_until < ?3 AND j.state = 'running'
            """, [.int(holder.jobID), .int(holder.token), .int(now)]
        ) {
            (until: $0.int(0), heartbeat: $0.optionalInt(1))
        }
    }

    /// Every lock row with its environment, for the status API.
    package static func all(_ db: Database) throws -> [JSON] {
        try db.query(
            """
            SELECT p.name, e.name, l.job_id, l.fencing_token, l.acquired_at, l.lease_until, (SELECT count(*) FROM
            jobs q WHERE q.environment_id = l.environment_id AND q.state = 'queued')
            FROM locks l JOIN environments e ON e.id = l.environment_id JOIN projects p ON p.id = e.project_id
            ORDER BY p.name, e.name
            """
        ) { row in
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
