/// Owns the `commits` table: when each pushed commit was made, as the provider's push said, so a
/// deploy's lead time for changes (DORA) can count from it (`Transition.CountMetrics`, the DORA
/// API). One row per (project, sha), written in the push webhook's transaction; the first word wins.
package enum Commits {
    /// The commit times a push payload gives for `shas` (the heads it moved): GitHub's `head_commit`,
    /// GitLab's `commits`, Bitbucket Cloud's `push.changes[].new.target`. Bitbucket Data Center's
    /// `repo:refs_changed` carries none.
    package static func times(in json: [UInt8], shas: [String]) -> [(sha: String, at: Int64)] {
        guard !shas.isEmpty else { return [] }
        var found: [(String, Int64)] = []
        func take(_ commit: JSON?, id: String, time: String) {
            guard let sha = commit?[id]?.stringValue, shas.contains(sha), !found.contains(where: { $0.0 == sha }),
                let at = commit?[time]?.stringValue.flatMap({ Clock.seconds(rfc3339: $0) })
            else { return }
            found.append((sha, at))
        }
        if let head = JSON.value(at: ["head_commit"], in: json) { take(head, id: "id", time: "timestamp") }
        for commit in JSON.value(at: ["commits"], in: json)?.arrayValue ?? [] {
            take(commit, id: "id", time: "timestamp")
        }
        for change in JSON.value(at: ["push", "changes"], in: json)?.arrayValue ?? [] {
            take(change["new"]?["target"], id: "hash", time: "date")
        }
        return found
    }

    /// Remembers when each of `commits` was made (a commit already known keeps its time).
    package static func record(_ tx: Transaction, project: Int64, _ commits: [(sha: String, at: Int64)]) throws {
        for (sha, at) in commits {
            try tx.db.run(
                "INSERT INTO commits (project_id, sha, committed_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                [.int(project), .text(sha), .int(at)])
        }
    }

    /// When commit `sha` of project `project` was made, if a push said.
    package static func committedAt(_ db: Database, project: Int64, sha: String) throws -> Int64? {
        try db.scalar(
            "SELECT committed_at FROM commits WHERE project_id = ?1 AND sha = ?2", [.int(project), .text(sha)])
    }
}
