internal import CSQLite

/// A prepared statement; finalized in `deinit`. Binding with a wrong index is a draven bug and
/// traps; stepping errors are runtime conditions (busy, constraint) and are thrown.
package final class Statement {
    let handle: OpaquePointer
    let sql: String
    unowned let db: Database

    init(db: Database, sql: String) throws(SQLiteError) {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw db.error(rc, sql: sql) }
        self.handle = stmt
        self.sql = sql
        self.db = db
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds `values` to the positional parameters `?1…?n`, after resetting the statement.
    @discardableResult
    package func bind(_ values: [SQLValue]) -> Statement {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(handle, index)
            case .int(let v): rc = sqlite3_bind_int64(handle, index, v)
            case .double(let v): rc = sqlite3_bind_double(handle, index, v)
            // With its byte length, not -1: SQLite would stop at the first NUL (U+0000 is valid in
            // JSON and in Swift strings), storing less than was hashed, audited or answered (found by
            // the hostile-input suite and by the fuzz target `store`).
            case .text(let v): rc = sqlite3_bind_text(handle, index, v, Int32(v.utf8.count), csqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes {
                    sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient())
                }
            }
            precondition(rc == SQLITE_OK, "binding parameter \(index) of \(sql) failed: \(rc)")
        }
        return self
    }

    /// Advances to the next row; returns false when done.
    package func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            sqlite3_reset(handle)
            throw db.error(rc, sql: sql)
        }
    }

    /// Runs the statement to completion, ignoring rows.
    package func run() throws(SQLiteError) {
        while try step() {}
        sqlite3_reset(handle)
    }

    package func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    package func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    package func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
    package func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    package func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
    package func blob(_ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}

/// A value bound to a statement parameter.
package enum SQLValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
    package init(stringLiteral value: String) { self = .text(value) }
    package init(integerLiteral value: Int64) { self = .int(value) }
    package init(nilLiteral: ()) { self = .null }
    package static func text(_ v: String?) -> SQLValue { v.map { .text($0) } ?? .null }
    package static func int(_ v: Int64?) -> SQLValue { v.map { .int($0) } ?? .null }
    package static func bool(_ v: Bool) -> SQLValue { .int(v ? 1 : 0) }
}
