internal import CSQLite
internal import Glibc

/// One SQLite connection, owned: closed in `deinit`.
///
/// Every connection is set up the same way: `synchronous=NORMAL` (durable across
/// process crashes; WAL makes a power loss lose at most the last transactions, never corrupt),
/// foreign keys on, a busy timeout so concurrent writers wait instead of failing, and
/// defensive mode. Statements are cached per connection: a CGI process prepares each once.
/// See https://www.sqlite.org/wal.html and https://www.sqlite.org/c3ref/busy_timeout.html
///
/// ## Owners and dialect
/// Each table is read and written through one owner type that holds its SQL (`Job` and
/// `StateMachine` for jobs, `Locks`, `Outbox`, `Deliveries`, `Releases`, `Approvals`, `Audit`,
/// `Tokens`, `ConfigApply` for the configuration, …); handlers and CLI commands hold none.
/// Owners write SQL that PostgreSQL also reads: `?N` parameters (a backend rewrites them to
/// `$N` in `Statement`), `INSERT … ON CONFLICT DO NOTHING` and `RETURNING` (instead of
/// `changes()` and `last_insert_rowid()`), `coalesce`, `||`. What is SQLite's own is kept here
/// and in a short list of places a second backend must touch:
/// - this file: `BEGIN IMMEDIATE` (`immediate`: PostgreSQL would take a transaction-level
///   advisory lock or `SERIALIZABLE`), the connection PRAGMAs, the WAL checkpoint, and
///   `changes` / `lastInsertRowID` (left for `StateMachine.create`, `ConfigApply` and
///   `RefusalCounts.prune`);
/// - `Migrations.swift` (STRICT tables, `journal_mode=WAL`) and `Database+Integrity.swift`
///   (`PRAGMA integrity_check`); `Doctor` reads in one deferred `BEGIN`, as `snapshot` does;
/// - JSON functions: `json_extract` (`Policy.load`), `json_each` (`Approvals`);
/// - `INSERT OR REPLACE` (`ApprovalMessages.remember`), two-argument `max()` and `min()`
///   (`Locks.extend`, `Job.silentRuns`: PostgreSQL's `GREATEST`/`LEAST`), and booleans stored
///   and bound as integers (`SQLValue.bool`, `disabled = 0`, `retired = 0`).
/// `ON CONFLICT (…) DO UPDATE` upserts (`SecretsStore`, `RefusalCounts`) read the same in both.
/// Times are Unix seconds bound as integers; no SQL date function is used.
package final class Database {
    let handle: OpaquePointer
    let path: String
    private var cache: [String: Statement] = [:]
    /// Outbox rows written by transactions that committed on this connection, not yet taken
    /// (`takeCommittedOutbox`); rows of a rolled-back transaction are dropped.
    private var committedOutbox: [Int64] = []
    fileprivate var uncommittedOutbox: [(id: Int64, last: Bool)] = []
    /// Where the requests this connection writes for come from (`console`), when not the API:
    /// `Audit.record` adds it as `detail.via` to every record that does not name its own.
    package var auditVia: String?
    /// The W3C trace context of the request this connection writes for (its valid `traceparent`
    /// header, `TraceContext`): the jobs and plan runs it creates keep it.
    package var traceparent: String?
    /// How long a writer waits for the write lock before SQLITE_BUSY (ms).
    package static let busyTimeoutMS: Int32 = 10_000

    /// Opens (creating if needed) the database at `path`.
    /// - Throws: `SQLiteError` when the file cannot be opened or set up.
    package init(path: String, create: Bool = true) throws(SQLiteError) {
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        if create { flags |= SQLITE_OPEN_CREATE }
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            // sqlite3_open_v2 allocates a handle even on failure; it must be closed.
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: message, sql: nil)
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        csqlite_busy_handler(db, Self.busyTimeoutMS)  // sqlite3_busy_timeout, in short steps (see the shim)
        _ = csqlite_db_config_flag(db, SQLITE_DBCONFIG_DEFENSIVE, 1)
        // journal_mode=WAL is persistent: `Migrations.migrate` sets it once for the file.
        try execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
    }

    /// Copies what the WAL holds into the database without waiting for or blocking writers
    /// (`PRAGMA wal_checkpoint(PASSIVE)`). `draven sweep` runs it after each pass: with the
    /// service holding the store open the WAL is never reset by a last close, and otherwise the
    /// request whose commit crosses SQLite's 1000-page mark pays the checkpoint (and its fsync of
    /// the database file: ~100–200 ms on a 750 MB store, seen as a p99 spike in `make bench`).
    /// - Returns: frames in the WAL and frames now in the database (equal when it all fitted), or
    ///   nil when another connection was checkpointing at that moment (two sweeps at once).
    @discardableResult
    package func checkpoint() throws(SQLiteError) -> (frames: Int, checkpointed: Int)? {
        var frames: Int32 = 0
        var done: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
        if rc & 0xff == SQLITE_BUSY { return nil }
        guard rc == SQLITE_OK else { throw error(rc, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        return (Int(frames), Int(done))
    }

    /// For short-lived single-threaded processes (every CGI function): SQLite without mutexes,
    /// memory statistics or lookaside. Must run before the first connection opens; later calls
    /// change nothing.
    package static func configureSingleThreaded() {
        _ = csqlite_config_single_thread()
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// For a connection held open for a process's whole life (`draven sweep`): says so, until
    /// the process exits, with a shared lock on `<database>-holder` (several sweeps may hold it).
    /// While it is held the WAL index stays valid between requests (DESIGN.md: the last
    /// connection to close checkpoints and removes the WAL; with none closing, each new first
    /// connection would rebuild the index from the whole WAL), so a function may exit without
    /// closing (`isHeldByService`). Best effort: without the mark functions close as before.
    package func markHeldByService() {
        let fd = open(path + "-holder", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        var lock = Self.holderLock(F_RDLCK)
        if fcntl(fd, F_SETLK, &lock) != 0 { close(fd) }  // otherwise kept open, and locked, for the process's life
    }

    /// Whether a service (`draven sweep`) holds this store open (`markHeldByService`). A function
    /// then exits without closing: its transactions are committed, the kernel drops its locks,
    /// and closing would only free memory and find that it may not checkpoint (~40 µs per
    /// request). Without the service it closes, so the last connection checkpoints and removes
    /// the WAL as SQLite does.
    package var isHeldByService: Bool {
        let fd = open(path + "-holder", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }  // this process holds no lock on that file, so closing drops nothing
        var lock = Self.holderLock(F_WRLCK)
        return fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != Int16(F_UNLCK)
    }

    private static func holderLock(_ type: Int32) -> flock {
        var lock = flock()
        lock.l_type = Int16(type)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 0
        return lock
    }

    func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements that take no parameters.
    package func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, sql: sql) }
    }

    /// A cached prepared statement for `sql`, bound to `values`.
    package func prepare(_ sql: String, _ values: [SQLValue] = []) throws(SQLiteError) -> Statement {
        let stmt: Statement
        if let cached = cache[sql] {
            stmt = cached
        } else {
            stmt = try Statement(db: self, sql: sql)
            cache[sql] = stmt
        }
        return stmt.bind(values)
    }

    /// Runs a statement that returns no rows.
    package func run(_ sql: String, _ values: [SQLValue] = []) throws(SQLiteError) {
        try prepare(sql, values).run()
    }

    /// Runs a query and maps each row.
    package func query<T>(_ sql: String, _ values: [SQLValue] = [], _ row: (Statement) throws -> T) throws -> [T] {
        let stmt = try prepare(sql, values)
        defer { stmt.reset() }
        var rows: [T] = []
        while try stmt.step() { rows.append(try row(stmt)) }
        return rows
    }

    /// Runs a query and maps the first row, if any.
    package func first<T>(_ sql: String, _ values: [SQLValue] = [], _ row: (Statement) throws -> T) throws -> T? {
        let stmt = try prepare(sql, values)
        defer { stmt.reset() }
        return try stmt.step() ? row(stmt) : nil
    }

    /// The first column of the first row as an integer, if any.
    package func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> Int64? {
        try first(sql, values) { $0.isNull(0) ? nil : $0.int(0) } ?? nil
    }

    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    package var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`: the write lock is taken up front, so two
    /// writers never deadlock upgrading a read lock. Rolls back and rethrows the first error if
    /// `body` throws. The `Transaction` token proves to callees that they run inside one.
    package func immediate<T>(_ body: (Transaction) throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        uncommittedOutbox = []
        do {
            let value = try body(Transaction(db: self))
            try execute("COMMIT")
            // Rows marked `last` (events) after the others: a slow subscriber never delays a dispatch.
            committedOutbox += uncommittedOutbox.filter { !$0.last }.map(\.id)
            committedOutbox += uncommittedOutbox.filter(\.last).map(\.id)
            uncommittedOutbox = []
            return value
        } catch {
            try? execute("ROLLBACK")
            uncommittedOutbox = []
            throw error
        }
    }

    /// Runs `body` inside a deferred `BEGIN … COMMIT`: every read in it sees one snapshot of the
    /// store (WAL readers never block writers). Inside another transaction it just runs `body`.
    package func snapshot<T>(_ body: () throws -> T) throws -> T {
        guard sqlite3_get_autocommit(handle) != 0 else { return try body() }
        try execute("BEGIN")
        defer { try? execute("COMMIT") }
        return try body()
    }

    /// The ids of outbox rows committed since the last call, for `draven-deliver`.
    @discardableResult
    package func takeCommittedOutbox() -> [Int64] {
        defer { committedOutbox = [] }
        return committedOutbox
    }
}

/// Proof that the holder runs inside `Database.immediate`. Functions that must write several
/// rows atomically (state transitions, audit) take one instead of a `Database`.
package struct Transaction {
    package let db: Database

    /// Notes an outbox row written in this transaction; it is handed to the deliverer only if
    /// the transaction commits, and after the transaction's other rows when `last`.
    func enqueued(_ id: Int64, last: Bool = false) { db.uncommittedOutbox.append((id, last)) }

    /// Runs `body` inside a `SAVEPOINT`: if it throws, what it wrote (outbox rows included) is
    /// undone and the error rethrown, and the rest of the transaction goes on. For a decision
    /// that may be refused half-way (a plan step's deploy: the job is created, then its start is
    /// refused), so the refusal leaves nothing behind.
    package func savepoint<T>(_ body: () throws -> T) throws -> T {
        let mark = db.uncommittedOutbox.count
        try db.execute("SAVEPOINT draven_step")
        do {
            let value = try body()
            try db.execute("RELEASE draven_step")
            return value
        } catch {
            try db.execute("ROLLBACK TO draven_step")
            try db.execute("RELEASE draven_step")
            db.uncommittedOutbox.removeLast(db.uncommittedOutbox.count - mark)
            throw error
        }
    }
}

extension Statement {
    func reset() { sqlite3_reset(handle) }
}
