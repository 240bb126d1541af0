/// Owns the `releases` table.
///
/// Release history per environment: which ref/sha is live, since when, and which job put it
/// there. A row is written when a deploy or rollback job succeeds (in the transaction that
/// ends it); the previous live row gets its `live_until`. Rollbacks take their target here.
package enum Releases {
    package struct Release: Sendable {
        package var id: Int64
        package var jobID: Int64
        package var kind: String
        package var ref: String
        package var refKind: String
        package var sha: String?
        package var releaseID: String?
        package var liveFrom: Int64
        package var liveUntil: Int64?

        package var json: JSON {
            .object([
                "id": .int(id), "job_id": .int(jobID), "kind": .string(kind), "ref": .string(ref),
                "ref_kind": .string(refKind),
                "sha": sha.map(JSON.string) ?? .null, "release_id": releaseID.map(JSON.string) ?? .null,
                "live": .bool(liveUntil == nil), "live_from": .string(Clock.rfc3339(liveFrom)),
                "live_until": liveUntil.map { .string(Clock.rfc3339($0)) } ?? .null,
            ])
        }
    }

    package static let select = """
        SELECT r.id, r.job_id, j.kind, r.ref, r.ref_kind, r.sha, r.release_id, r.live_from, r.live_until
        FROM releases r JOIN jobs j ON j.id = r.job_id
        """

    package static func row(_ s: Statement) -> Release {
        Release(
            id: s.int(0), jobID: s.int(1), kind: s.text(2), ref: s.text(3), refKind: s.text(4), sha: s.optionalText(5),
            releaseID: s.optionalText(6), liveFrom: s.int(7), liveUntil: s.optionalInt(8))
    }

    /// Records that the job `success` moved to `succeeded` is now live, if its kind makes
    /// releases (`JobKind.isRelease`: a deploy or a rollback).
    static func record(_ tx: Transaction, _ success: Transition) throws {
        let job = success.job
        let now = success.now
        guard job.kind.isRelease else { return }
        try tx.db.run(
            "UPDATE releases SET live_until = ?2 WHERE environment_id = ?1 AND live_until IS NULL",
            [.int(job.environmentID), .int(now)])
        try tx.db.run(
            """
            INSERT INTO releases (environment_id, job_id, ref, ref_kind, sha, release_id, live_from)
            SELECT environment_id, id, ref, ref_kind, sha, release_id, ?2 FROM jobs WHERE id = ?1
            """, [.int(job.id), .int(now)])
    }

    /// The release live on an environment now (the last succeeded deploy or rollback).
    package static func live(_ db: Database, environment: Int64) throws -> Release? {
        try db.first(select + " WHERE r.environment_id = ?1 ORDER BY r.id DESC LIMIT 1", [.int(environment)], row)
    }

    /// The release before the live one: what "roll back" means when nothing more is said.
    package static func previous(_ db: Database, environment: Int64) throws -> Release? {
        try db.first(
            select + " WHERE r.environment_id = ?1 ORDER BY r.id DESC LIMIT 1 OFFSET 1", [.int(environment)], row)
    }

    /// A release of the environment named by its id, its job's id, or its release_id.
    package static func find(_ db: Database, environment: Int64, name: String) throws -> Release? {
        try db.first(
            select + """
                 WHERE r.environment_id = ?1 AND (r.release_id = ?2 OR CAST(r.id AS TEXT) = ?2 OR r.ref = ?2 OR r.sha
                 = ?2)
                 ORDER BY r.id DESC LIMIT 1
                """, [.int(environment), .text(name)], row)
    }

    /// A release of the environment by its id.
    package static func find(_ db: Database, environment: Int64, id: Int64) throws -> Release? {
        try db.first(select + " WHERE r.environment_id = ?1 AND r.id = ?2", [.int(environment), .int(id)], row)
    }

    /// The release live before `job`'s: before its release if it made one, else the live one.
    package static func before(_ db: Database, environment: Int64, job: Int64) throws -> Release? {
        try db.first(
            select + """
                 WHERE r.environment_id = ?1 AND r.id < coalesce((SELECT id FROM releases WHERE job_id = ?2), 1 << 62)
                 ORDER BY r.id DESC LIMIT 1
                """, [.int(environment), .int(job)], row)
    }

    /// The environment's history, newest first.
    package static func list(_ db: Database, environment: Int64, limit: Int) throws -> [Release] {
        try db.query(
            select + " WHERE r.environment_id = ?1 ORDER BY r.id DESC LIMIT ?2",
            [.int(environment), .int(Int64(limit))], row)
    }
}
