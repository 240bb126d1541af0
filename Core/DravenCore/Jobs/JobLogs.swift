/// Archived job logs: the deploy's own output as the runner streamed it (`POST /hooks/runner/log`),
/// in numbered chunks, deflate-compressed by `draven sweep` (`compact`). The owner of `job_logs`
/// (one row per job: totals, the cut, pruning) and `job_log_chunks` (the stored chunks); no other
/// type reads or writes them.
///
/// Rules, all decided here inside the caller's transaction:
/// - chunks arrive in order, `seq` 1, 2, 3 … without gaps: a chunk may be the next one (stored),
///   or a repeat of one already received (compared with what was received: the same data is a
///   duplicate, other data a conflict); anything further ahead is a conflict naming the seq
///   expected. So a log read up to seq N never gains a chunk before N later (`after=` is exact);
/// - a job's log holds at most `maxBytes` bytes (`logs.max_job_bytes`, default 10 MiB) and
///   `maxChunks` chunks: the chunk that crosses the cap is stored up to it and followed by a line
///   saying so (`cutMark`); later chunks are acknowledged and counted (`dropped`), not stored;
/// - a chunk's bytes are written to the job's spool file as they came (JobLogs+Spool.swift) and
///   compressed into the store by the next `draven sweep` pass (`compact`, zlib level 6):
///   compressing 64 KiB costs ~0.7 ms at level 1 and ~3.5 ms at level 6 here, more than the rest
///   of the request, so the request path only writes (README "Logs");
/// - `draven sweep` removes the chunks of ended jobs whose newest chunk is older than
///   `logs.retention` (default 90 days); the job's row stays, saying when (`pruned_at`).
package enum JobLogs {
    /// The most a chunk may carry, decoded (64 KiB).
    package static let chunkLimit = 65_536
    package static let defaultMaxBytes: Int64 = 10 << 20
    package static let defaultRetention: Int64 = 90 * 86_400
    /// Chunks per job: a runner flushing every second for a day stays well inside it.
    package static let maxChunks: Int64 = 100_000
    static let hashLength = 16

    /// What became of a chunk.
    package enum Outcome: Equatable, Sendable {
        /// Stored; `bytes` the log's size now; `cut` when this chunk reached the cap.
        case stored(bytes: Int64, cut: Bool)
        /// The same seq with the same data again: nothing changed.
        case duplicate
        /// Received after the cap cut the log: counted, not stored.
        case dropped
    }

    /// The per-job cap and retention the configuration set (`[logs]`), else the defaults.
    package struct Limits: Sendable {
        package var maxBytes: Int64 = JobLogs.defaultMaxBytes
        package var retention: Int64 = JobLogs.defaultRetention

        package init(maxBytes: Int64 = JobLogs.defaultMaxBytes, retention: Int64 = JobLogs.defaultRetention) {
            self.maxBytes = maxBytes
            self.retention = retention
        }

        /// The settings `draven apply` stored (`logs.max_job_bytes`, `logs.retention`: integers).
        package static func load(_ db: Database) throws -> Limits {
            var limits = Limits()
            if let raw = try Settings.get(db, "logs.max_job_bytes"), let n = Int64(raw), n > 0 { limits.maxBytes = n }
            if let raw = try Settings.get(db, "logs.retention"), let n = Int64(raw), n > 0 { limits.retention = n }
            return limits
        }
    }

    /// A chunk as received (masked) and its hash, made before the transaction.
    package struct Chunk: Sendable {
        package var seq: Int64
        package var data: [UInt8]
        package var hash: [UInt8]

        package init(seq: Int64, data: [UInt8]) {
            self.seq = seq
            self.data = data
            self.hash = Sodium.hash(data, length: JobLogs.hashLength)
        }
    }

    /// The line that marks where the cap cut a log.
    package static func cutMark(_ why: String) -> [UInt8] {
        Array("[draven: the log was cut here: \(why); later output was not stored]\n".utf8)
    }

    /// Appends `chunk` to job `job`'s log.
    /// - Throws: `.conflict` for a seq already used with other data or one past the next.
    package static func append(_ tx: Transaction, job: Int64, _ chunk: Chunk, limits: Limits, now: Int64) throws
        -> Outcome
    {
        let db = tx.db
        let summary = try db.first(
            "SELECT last_seq, last_hash, bytes, cut_seq FROM job_logs WHERE job_id = ?1", [.int(job)]
        ) { (lastSeq: $0.int(0), lastHash: $0.blob(1), bytes: $0.int(2), cutSeq: $0.optionalInt(3)) }
        let lastSeq = summary?.lastSeq ?? 0
        if chunk.seq <= lastSeq {
            let known =
                try db.first(
                    "SELECT hash FROM job_log_chunks WHERE job_id = ?1 AND seq = ?2", [.int(job), .int(chunk.seq)]
                ) { $0.blob(0) } ?? (chunk.seq == lastSeq ? summary?.lastHash : nil)
            guard let known else {
                throw DravenError.conflict(
                    "chunk \(chunk.seq) of job \(job)'s log came after the cut and is not kept; only the latest "
                        + "(\(lastSeq)) can be repeated")
            }
            guard Sodium.constantTimeEquals(known, chunk.hash) else {
                throw DravenError.conflict(
                    "chunk \(chunk.seq) of job \(job)'s log was already received with other data")
            }
            return .duplicate
        }
        guard chunk.seq == lastSeq + 1 else {
            throw DravenError.conflict(
                "job \(job)'s log expects chunk \(lastSeq + 1) next, not \(chunk.seq) (chunks are numbered 1, 2, 3…)")
        }
        let count = Int64(chunk.data.count)
        if summary?.cutSeq != nil {
            try db.run(
                """
                UPDATE job_logs SET last_seq = ?2, last_hash = ?3, dropped = dropped + ?4, last_at = ?5
                WHERE job_id = ?1
                """, [.int(job), .int(chunk.seq), .blob(chunk.hash), .int(count), .int(now)])
            return .dropped
        }
        let bytes = summary?.bytes ?? 0
        let room = max(0, limits.maxBytes - bytes)
        let overCap = count > room
        var data = chunk.data
        let cut = overCap || chunk.seq >= maxChunks
        if cut {
            if overCap { data = Array(chunk.data.prefix(Int(room))) }
            if let last = data.last, last != UInt8(ascii: "\n") { data.append(UInt8(ascii: "\n")) }
            data += cutMark(
                overCap
                    ? "it reached the cap of \(limits.maxBytes) bytes per job (logs.max_job_bytes)"
                    : "it reached \(maxChunks) chunks")
        }
        let kept = Int64(data.count)
        // The job's row first: the chunk refers to it.
        if summary == nil {
            try db.run(
                """
                INSERT INTO job_logs (job_id, last_seq, last_hash, bytes, stored, cut_seq, dropped, first_at, last_at)
                VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?7)
                """,
                [
                    .int(job), .int(chunk.seq), .blob(chunk.hash), .int(kept), .int(cut ? chunk.seq : nil),
                    .int(overCap ? count - room : 0), .int(now),
                ])
        } else {
            try db.run(
                """
                UPDATE job_logs SET last_seq = ?2, last_hash = ?3, bytes = bytes + ?4, stored = stored + ?4,
                cut_seq = ?5, dropped = dropped + ?6, last_at = ?7 WHERE job_id = ?1
                """,
                [
                    .int(job), .int(chunk.seq), .blob(chunk.hash), .int(kept), .int(cut ? chunk.seq : nil),
                    .int(overCap ? count - room : 0), .int(now),
                ])
        }
        // The bytes go to the spool at the end of what the committed rows hold (JobLogs+Spool.swift).
        let spooled = try spool(db, job: job, at: bytes, data)
        try db.run(
            """
            INSERT INTO job_log_chunks (job_id, seq, size, hash, encoding, data, spool_offset, at)
            VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7)
            """,
            [
                .int(job), .int(chunk.seq), .int(kept), .blob(chunk.hash), .blob(spooled ? [] : data),
                .int(spooled ? bytes : nil), .int(now),
            ])
        return .stored(bytes: bytes + kept, cut: cut)
    }

    /// A log as read: the bytes of the chunks after `after`, and where it stands.
    package struct Read: Sendable {
        package var bytes: [UInt8] = []
        /// The newest chunk the answer covers (chunks after the cut carry no bytes); `after` when none.
        package var lastSeq: Int64
        package var cut = false
        package var prunedAt: Int64?
        /// Bytes stored in all (as inflated) and received after the cut.
        package var total: Int64 = 0
        package var dropped: Int64 = 0
    }

    /// The bytes of every chunk of job `job` with seq > `after`, in order.
    /// - Throws: `SQLiteError`; a chunk that does not inflate is a damaged store (`.storeNotReady`).
    package static func read(_ db: Database, job: Int64, after: Int64) throws -> Read {
        try db.snapshot {
            var out = Read(lastSeq: after)
            guard
                let summary = try db.first(
                    "SELECT last_seq, cut_seq, pruned_at, bytes, dropped FROM job_logs WHERE job_id = ?1", [.int(job)],
                    { (last: $0.int(0), cut: $0.optionalInt(1), pruned: $0.optionalInt(2), $0.int(3), $0.int(4)) })
            else { return out }
            out.lastSeq = max(after, summary.last)
            out.cut = summary.cut != nil
            out.prunedAt = summary.pruned
            out.total = summary.3
            out.dropped = summary.4
            for piece in try chunks(db, job: job, from: after + 1) { out.bytes += piece }
            return out
        }
    }

    /// The end of job `job`'s log: whole chunks from the newest back, as many as hold `bytes`
    /// together (at least the newest one), and whether earlier chunks were left out.
    package static func tail(_ db: Database, job: Int64, bytes: Int64) throws -> (bytes: [UInt8], partial: Bool) {
        try db.snapshot {
            let first = try db.scalar(
                """
                SELECT min(seq) FROM (SELECT seq, size, sum(size) OVER (ORDER BY seq DESC) AS total
                                      FROM job_log_chunks WHERE job_id = ?1) WHERE total - size < ?2
                """, [.int(job), .int(bytes)])
            guard let first else { return ([], false) }
            let earlier = try db.scalar("SELECT min(seq) FROM job_log_chunks WHERE job_id = ?1", [.int(job)])
            return (try chunks(db, job: job, from: first).reduce(into: []) { $0 += $1 }, (earlier ?? first) < first)
        }
    }

    /// Where a job's log stands, without its bytes.
    package struct Summary: Sendable {
        package var lastSeq: Int64
        package var bytes: Int64
        package var cut: Bool
        package var dropped: Int64
        package var prunedAt: Int64?
    }

    /// Job `job`'s log totals, or nil when its runner sent none.
    package static func summary(_ db: Database, job: Int64) throws -> Summary? {
        try db.first(
            "SELECT last_seq, bytes, cut_seq, dropped, pruned_at FROM job_logs WHERE job_id = ?1", [.int(job)]
        ) {
            Summary(
                lastSeq: $0.int(0), bytes: $0.int(1), cut: !$0.isNull(2), dropped: $0.int(3),
                prunedAt: $0.optionalInt(4))
        }
    }

    /// The newest chunk's seq (0 without a log): part of the job page's ETag.
    package static func version(_ db: Database, job: Int64) throws -> Int64 {
        try db.scalar("SELECT last_seq FROM job_logs WHERE job_id = ?1", [.int(job)]) ?? 0
    }

    /// The stored chunks of `job` from seq `from` on, inflated, in order.
    static func chunks(_ db: Database, job: Int64, from: Int64) throws -> [[UInt8]] {
        try db.query(
            """
            SELECT seq, size, encoding, data, spool_offset FROM job_log_chunks WHERE job_id = ?1 AND seq >= ?2
            ORDER BY seq
            """,
            [.int(job), .int(from)]
        ) { row -> [UInt8] in
            if let offset = row.optionalInt(4) {
                return unspool(db, job: job, at: offset, size: Int(row.int(1)))
                    ?? missingMark(seq: row.int(0), size: row.int(1))
            }
            let data = row.blob(3)
            guard row.int(2) == 1 else { return data }
            guard let bytes = Deflate.decompress(data, size: Int(row.int(1))) else {
                throw DravenError.storeNotReady("chunk \(row.int(0)) of job \(job)'s log does not inflate")
            }
            return bytes
        }
    }

    /// `draven sweep`'s compression step: the chunks stored as they came (encoding 0), oldest first,
    /// at most `limit` a pass, deflated outside any transaction (zlib level 6) and written back in
    /// one short transaction per batch, each only if still uncompressed (two sweeps at once do the
    /// work twice at worst, never twice to the store). A chunk compression does not shrink is kept
    /// as it is (encoding 2). `job_logs.stored` follows.
    /// - Returns: how many chunks were compressed or settled.
    @discardableResult
    package static func compact(_ db: Database, limit: Int = 256, batch: Int = 32, level: Int32 = 6) throws -> Int {
        var done = 0
        while done < limit {
            let raw = try db.query(
                """
                SELECT job_id, seq, size, data, spool_offset FROM job_log_chunks WHERE encoding = 0
                ORDER BY at, job_id, seq LIMIT ?1
                """,
                [.int(Int64(min(batch, limit - done)))]
            ) { row in
                let (job, seq) = (row.int(0), row.int(1))
                let data =
                    row.optionalInt(4).map {
                        unspool(db, job: job, at: $0, size: Int(row.int(2))) ?? missingMark(seq: seq, size: row.int(2))
                    } ?? row.blob(3)
                return (job: job, seq: seq, data: data)
            }
            guard !raw.isEmpty else { break }
            let packed = raw.map { (chunk: $0, compressed: Deflate.compress($0.data, level: level)) }
            try db.immediate { tx in
                for (chunk, compressed) in packed {
                    try tx.db.run(
                        """
                        UPDATE job_log_chunks SET encoding = ?3, data = ?4, spool_offset = NULL
                        WHERE job_id = ?1 AND seq = ?2 AND encoding = 0
                        """,
                        [
                            .int(chunk.job), .int(chunk.seq), .int(compressed == nil ? 2 : 1),
                            .blob(compressed ?? chunk.data),
                        ])
                    guard tx.db.changes == 1, let compressed else { continue }
                    try tx.db.run(
                        "UPDATE job_logs SET stored = stored - ?2 WHERE job_id = ?1",
                        [.int(chunk.job), .int(Int64(chunk.data.count - compressed.count))])
                }
            }
            done += raw.count
        }
        return done
    }

    /// Logs whose newest chunk is older than the retention and not yet pruned, oldest first, at
    /// most `limit`: the candidates `prune` removes (when their jobs have ended).
    static func prunable(_ db: Database, before: Int64, limit: Int) throws -> [Int64] {
        try db.query(
            "SELECT job_id FROM job_logs WHERE pruned_at IS NULL AND last_at < ?1 ORDER BY last_at LIMIT ?2",
            [.int(before), .int(Int64(limit))]
        ) { $0.int(0) }
    }

    /// `draven sweep`'s retention step: removes the chunks of ended jobs whose newest chunk is
    /// older than `logs.retention`, one job per transaction, at most `limit` jobs a pass. The
    /// job's `job_logs` row stays, with `pruned_at`: its log answers empty and says so.
    /// - Returns: the jobs whose logs were pruned.
    package static func prune(_ db: Database, now: Int64, limit: Int = 200) throws -> [Int64] {
        let limits = try Limits.load(db)
        let before = now - limits.retention
        return try prunable(db, before: before, limit: limit).filter { job in
            try db.immediate { tx -> Bool in
                // Re-checked under the write lock; a job still holding its lock keeps its log.
                guard let state = try Job.state(tx.db, id: job), state.isTerminal,
                    try tx.db.scalar(
                        "SELECT 1 FROM job_logs WHERE job_id = ?1 AND pruned_at IS NULL AND last_at < ?2",
                        [.int(job), .int(before)]) != nil
                else { return false }
                try tx.db.run("DELETE FROM job_log_chunks WHERE job_id = ?1", [.int(job)])
                try tx.db.run(
                    "UPDATE job_logs SET pruned_at = ?2, stored = 0 WHERE job_id = ?1", [.int(job), .int(now)])
                removeSpool(tx.db, job: job)
                return true
            }
        }
    }

    /// `draven sweep`'s last log step: removes the spool file of each job that has ended and has no
    /// chunk left that only the spool holds (`compact` moved them into the store), and of each
    /// job with no log at all (bytes a dying request left). Under the write lock, so no chunk is
    /// appended meanwhile (an ended job takes none anyway).
    /// - Returns: the jobs whose spool files were removed.
    @discardableResult
    package static func releaseSpools(_ db: Database) throws -> [Int64] {
        try spooledJobs(db).filter { job in
            try db.immediate { tx -> Bool in
                let state = try Job.state(tx.db, id: job)
                guard state == nil || state!.isTerminal,
                    try tx.db.scalar(
                        "SELECT 1 FROM job_log_chunks WHERE job_id = ?1 AND spool_offset IS NOT NULL LIMIT 1",
                        [.int(job)]) == nil
                else { return false }
                removeSpool(tx.db, job: job)
                return true
            }
        }
    }
}
