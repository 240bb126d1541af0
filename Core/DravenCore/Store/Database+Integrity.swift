extension Database {
    /// What SQLite finds wrong with the file (`PRAGMA integrity_check`, at most `limit` lines) and
    /// every row whose foreign key names a missing row (`PRAGMA foreign_key_check`). Empty when sound.
    package func integrityProblems(limit: Int = 100) throws -> [String] {
        let integrity = try query("PRAGMA integrity_check(\(limit))") { $0.text(0) }
        let keys = try query("PRAGMA foreign_key_check") { row in
            let id = row.optionalInt(1).map(String.init) ?? "(no rowid)"
            return "\(row.text(0)) row \(id) refers to a missing \(row.text(2)) row"
        }
        return (integrity == ["ok"] ? [] : integrity) + keys
    }
}
