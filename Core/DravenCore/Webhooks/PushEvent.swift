/// A push moves a ref. A job awaiting approval for that ref would now deploy another commit
/// (pipelines are started with the ref, not a sha), so the job takes the new sha and the
/// approvals given for the old one stop counting (`Approvals.count` matches the sha).
///
/// Read: GitHub `push` and GitLab `Push Hook` / `Tag Push Hook` — only their `ref`, `after` and
/// `deleted` members, which lead the payload: it is scanned, not decoded (a 7 KB push costs ~10×
/// less) — and Bitbucket Data Center `repo:refs_changed`, whose `changes` list every ref the push
/// moved (`ref.id`, `toHash`, `type`; a `DELETE` moves nothing). The jobs are looked for in the
/// delivery's own transaction — and Bitbucket Cloud `repo:push`, whose `push.changes` give each
/// moved ref's `new` head (`name`, `type` branch / tag / annotated_tag, `target.hash`; `new` is
/// null when the ref was deleted).
package enum PushEvent {
    package typealias Move = (ref: String, sha: String)

    package static func isPush(provider: String, name: String) -> Bool {
        switch provider {
        case "github": name == "push"
        case "gitlab": name == "Push Hook" || name == "Tag Push Hook"
        case "bitbucket-dc": name == "repo:refs_changed"
        case "bitbucket": name == "repo:push"
        default: false
        }
    }

    /// The refs a push moved and their new heads, from the payload's JSON text; none for
    /// deletions (or a payload without them).
    package static func parse(provider: String, _ json: [UInt8]) -> [Move] {
        if provider == "bitbucket" { return bitbucketCloud(json) }
        guard provider == "bitbucket-dc" else {
            guard let ref = JSON.string(at: ["ref"], in: json), let after = JSON.string(at: ["after"], in: json), isHead(after),
                  JSON.value(at: ["deleted"], in: json)?.boolValue != true
            else { return [] }
            return [(ref, after)]
        }
        return (JSON.value(at: ["changes"], in: json)?.arrayValue ?? []).compactMap { change in
            guard change["type"]?.stringValue != "DELETE", let ref = change["ref"]?["id"]?.stringValue ?? change["refId"]?.stringValue,
                  let to = change["toHash"]?.stringValue, isHead(to)
            else { return nil }
            return (ref, to)
        }
    }

    /// Bitbucket Cloud: each change's new head; deletions (`new` null) and refs of other types skipped.
    private static func bitbucketCloud(_ json: [UInt8]) -> [Move] {
        (JSON.value(at: ["push", "changes"], in: json)?.arrayValue ?? []).compactMap { change in
            guard let new = change["new"], let name = new["name"]?.stringValue, !name.isEmpty,
                  let sha = new["target"]?["hash"]?.stringValue, isHead(sha) else { return nil }
            switch new["type"]?.stringValue {
            case "branch": return ("refs/heads/" + name, sha)
            case "tag", "annotated_tag": return ("refs/tags/" + name, sha)
            default: return nil
            }
        }
    }

    /// A commit a ref can point at: a full sha, not the all-zero one providers send for "none".
    private static func isHead(_ sha: String) -> Bool {
        GitRef.isCommitSHA(sha) && sha.contains { $0 != "0" }
    }

    /// Gives the awaiting jobs of each moved ref their new sha (`StateMachine.moveSha`, which
    /// records it). Returns the ids changed.
    package static func apply(_ tx: Transaction, projectID: Int64, moves: [Move], delivery: String, now: Int64) throws -> [Int64] {
        var changed: [Int64] = []
        for (ref, sha) in moves {
            let jobs = try tx.db.query("""
                SELECT id FROM jobs
                WHERE state = 'awaiting_approval' AND project_id = ?1 AND ref = ?2 AND coalesce(sha, '') != ?3
                """, [.int(projectID), .text(ref), .text(sha)]) { $0.int(0) }
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
