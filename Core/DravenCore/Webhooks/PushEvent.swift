/// A push moves a ref. A job awaiting approval for that ref would now deploy another commit
/// (pipelines are started with the ref, not a sha), so the job takes the new sha and the
/// approvals given for the old one stop counting (`Approvals.count` matches the sha).
///
/// Only GitHub `push` and GitLab `Push Hook` / `Tag Push Hook` are read, and only their `ref`,
/// `after` and `deleted` members, which lead the payload: it is scanned, not decoded (a 7 KB
/// push costs ~10× less), and the jobs are looked for in the delivery's own transaction.
enum PushEvent {
    static func isPush(provider: String, name: String) -> Bool {
        (provider == "github" && name == "push") || (provider == "gitlab" && (name == "Push Hook" || name == "Tag Push Hook"))
    }

    /// The ref and its new head from a payload's JSON text, or nil for a deletion (or a payload
    /// without them).
    static func parse(_ json: [UInt8]) -> (ref: String, sha: String)? {
        guard let ref = JSON.string(at: ["ref"], in: json), let after = JSON.string(at: ["after"], in: json), GitRef.isCommitSHA(after),
              after.contains(where: { $0 != "0" }), JSON.value(at: ["deleted"], in: json)?.boolValue != true
        else { return nil }
        return (ref, after)
    }

    /// Gives the awaiting jobs of `ref` their new sha. Returns the ids changed.
    static func apply(_ tx: Transaction, projectID: Int64, ref: String, sha: String, delivery: String, now: Int64) throws -> [Int64] {
        let jobs = try tx.db.query("""
            SELECT id, sha FROM jobs WHERE state = 'awaiting_approval' AND project_id = ?1 AND ref = ?2 AND coalesce(sha, '') != ?3
            """, [.int(projectID), .text(ref), .text(sha)]) { ($0.int(0), $0.optionalText(1)) }
        for (id, old) in jobs {
            try tx.db.run("UPDATE jobs SET sha = ?2, updated_at = ?3 WHERE id = ?1", [.int(id), .text(sha), .int(now)])
            let detail: JSONObject = ["from": old.map(JSON.string) ?? .null, "to": .string(sha), "ref": .string(ref), "delivery": .string(delivery)]
            try StateMachine.note(tx, job: id, event: "sha_changed", actor: "push webhook", detail: detail, now: now)
            try Audit.record(tx, at: now, actor: "push webhook", action: "job.sha_changed", subject: "job/\(id)", detail: detail)
        }
        return jobs.map(\.0)
    }
}
