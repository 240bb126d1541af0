internal import Glibc

/// The log spool: where a chunk's bytes go on the request path, one append-only file per job
/// (`<database>-logs/<job id>`, next to the store's `-wal` and `-shm`), while its row in
/// `job_log_chunks` says where (`spool_offset`, the log's size before it). `draven sweep`
/// compresses spooled chunks into their rows (`compact`) and removes a job's file once the job
/// has ended and every chunk of it is in the store (`releaseSpools`).
///
/// Why not the row: a 64 KiB blob written into SQLite is written twice (the WAL, then the
/// database at the checkpoint) and makes the request whose commit crosses the WAL's 1000-page
/// mark copy 4 MB and fsync it; with no service holding the store, every request's closing
/// checkpoint copies it again. One `pwrite` to a file the kernel caches costs a fraction of that
/// (README "Logs": measured). GitLab keeps live job traces the same way: chunks outside the
/// database while the job runs, archived when it ends.
///
/// Consistency: the bytes are written under the store's write lock, before the row that names
/// them commits, at the offset the committed rows end at. A process that dies between the two
/// leaves bytes past that end, which the next chunk overwrites; a row always names bytes that
/// were written first. Durability is the store's (`synchronous=NORMAL`): both survive a process
/// crash; a power loss may lose the newest of either. A spooled chunk whose bytes are missing
/// reads as a line saying so (`missingMark`), never as other bytes.
extension JobLogs {
    /// The spool directory of the store at `database`; nil for a store with no file (in memory).
    static func spoolDirectory(_ database: String) -> String? {
        database.isEmpty || database.hasPrefix(":memory:") || database.hasPrefix("file::memory:")
            ? nil : database + "-logs"
    }

    static func spoolPath(_ db: Database, job: Int64) -> String? {
        spoolDirectory(db.path).map { "\($0)/\(job)" }
    }

    /// Writes `data` at `offset` of job `job`'s spool file (creating the directory and the file).
    /// - Returns: false when the store has no spool (in memory): the caller keeps the bytes in the row.
    /// - Throws: `.storeNotReady` when the file cannot be written (the transaction then rolls back).
    static func spool(_ db: Database, job: Int64, at offset: Int64, _ data: [UInt8]) throws -> Bool {
        guard let directory = spoolDirectory(db.path), let path = spoolPath(db, job: job) else { return false }
        var fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o640)
        if fd < 0, errno == ENOENT {
            _ = mkdir(directory, 0o750)
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o640)
        }
        guard fd >= 0 else { throw spoolError("open", path) }
        defer { close(fd) }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, data.count - written, off_t(offset) + off_t(written))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw spoolError("write", path) }
            written += n
        }
        return true
    }

    /// The `size` bytes at `offset` of job `job`'s spool file, or nil when they are not all there.
    static func unspool(_ db: Database, job: Int64, at offset: Int64, size: Int) -> [UInt8]? {
        guard let path = spoolPath(db, job: job) else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = bytes.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + got, size - got, off_t(offset) + off_t(got))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            got += n
        }
        return bytes
    }

    /// What a spooled chunk whose bytes are gone (a power loss, a spool removed by hand) reads as.
    static func missingMark(seq: Int64, size: Int64) -> [UInt8] {
        Array("[draven: chunk \(seq) of this log (\(size) bytes) is missing from the log spool]\n".utf8)
    }

    static func removeSpool(_ db: Database, job: Int64) {
        if let path = spoolPath(db, job: job) { _ = unlink(path) }
    }

    /// The jobs that have a spool file (its names), for `releaseSpools`.
    static func spooledJobs(_ db: Database) -> [Int64] {
        guard let directory = spoolDirectory(db.path), let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var jobs: [Int64] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let job = Int64(name), job > 0 { jobs.append(job) }
        }
        return jobs.sorted()
    }

    private static func spoolError(_ what: String, _ path: String) -> DravenError {
        .storeNotReady("the log spool cannot \(what) \(path): \(String(cString: strerror(errno)))")
    }
}
