internal import CSQLite

/// An error from SQLite. Carries the SQL text but never the bound values, which may be secrets
/// or personal data (GRDB's `publicStatementArguments` habit).
package struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The extended result code.
    package var code: Int32
    package var message: String
    package var sql: String?

    /// The database was locked by another connection for longer than the busy timeout.
    package var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
    /// A UNIQUE, FOREIGN KEY, CHECK or NOT NULL constraint refused the write.
    package var isConstraint: Bool { code & 0xff == SQLITE_CONSTRAINT }
    /// SQLITE_CONSTRAINT_UNIQUE or SQLITE_CONSTRAINT_PRIMARYKEY (macros Swift cannot import).
    package var isUniqueViolation: Bool { code == SQLITE_CONSTRAINT | (8 << 8) || code == SQLITE_CONSTRAINT | (6 << 8) }

    package var description: String {
        var text = "SQLite error \(code): \(message)"
        if let sql { text += " (in: \(sql))" }
        return text
    }
}
