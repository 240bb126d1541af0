/// A push moves a ref. A job awaiting approval for that ref would now deploy another commit
/// (pipelines are started with the ref, not a sha), so the job takes the new sha and the
/// approvals given for the old one stop counting (`Approvals.count` matches the sha).
///
/// Which events are pushes and how each provider's are read is the provider's
/// (`CIProvider.isPush`, `pushMoves`): GitHub `push`, GitLab `Push Hook` / `Tag Push Hook`,
/// Bitbucket Cloud `repo:push`, Bitbucket Data Center `repo:refs_changed`. The jobs are looked
/// for in the delivery's own transaction.
package enum PushEvent {
    package typealias Move = (ref: String, sha: String)

    /// GitHub's `push` and GitLab's push hooks: only their `ref`, `after` and `deleted` members,
    /// which lead the payload: it is scanned, not decoded (a 7 KB push costs ~10× less).
    static func singleRef(_ json: [UInt8]) -> [Move] {
        guard let ref = JSON.string(at: ["ref"], in: json), let after = JSON.string(at: ["after"], in: json),
            isHead(after), JSON.value(at: ["deleted"], in: json)?.boolValue != true
        else { return [] }
        return [(ref, after)]
    }

    /// A commit a ref can point at: a full sha, not the all-zero one providers send for "none".
    static func isHead(_ sha: String) -> Bool {
        GitRef.isCommitSHA(sha) && sha.contains { $0 != "0" }
    }

    /// Gives the awaiting jobs of each moved ref their new sha (`StateMachine.moveSha`, which
    /// records it). Returns the ids changed.
    package static func apply(_ tx: Transaction, projectID: Int64, moves: [Move], delivery: String, now: Int64) throws
        -> [Int64]
    {
        var changed: [Int64] = []
        for (ref, sha) in moves {
            let jobs = try tx.db.query(
                """
                SELECT id FROM jobs
                WHERE state = 'awaiting_approval' AND project_id = ?1 AND ref = ?2 AND coalesce(sha, '') != ?3
                """, [.int(projectID), .text(ref), .text(sha)]
            ) { $0.int(0) }
            for id in jobs {
                let why: JSONObject = ["ref": .string(ref), "delivery": .string(delivery)]
                if try StateMachine.moveSha(tx, job: id, sha: sha, actor: "push webhook", detail: why, now: now) {
                    changed.append(id)
                }
            }
        }
        return changed
    }
}
