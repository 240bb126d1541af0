import Testing

@testable import DravenCore

@Suite struct StoreTests {
    @Test func migrationsApplyOnceAndMarkTheVersion() throws {
        let store = try TestStore()
        #expect(try Migrations.isCurrent(store.db))
        #expect(try Migrations.migrate(store.db).isEmpty)
        #expect(try Migrations.pending(store.db).isEmpty)
        #expect(try store.db.first("PRAGMA journal_mode") { $0.text(0) } == "wal")
        #expect(try store.db.scalar("PRAGMA foreign_keys") == 1)
    }

    /// With another connection holding the store open (as the sweep service does), commits stay
    /// in the WAL until a checkpoint copies them into the database.
    @Test func aPassiveCheckpointCopiesTheWAL() throws {
        let store = try TestStore()
        let other = try Database(path: store.paths.database)
        try store.db.execute("PRAGMA wal_autocheckpoint=0")
        try store.db.immediate { tx in try tx.db.run("INSERT INTO settings (key, value) VALUES ('bench', 'x')") }
        let first = try #require(try other.checkpoint())
        #expect(first.frames > 0 && first.checkpointed == first.frames)
        #expect(try other.scalar("SELECT count(*) FROM settings WHERE key = 'bench'") == 1)
        let again = try #require(try other.checkpoint())
        #expect(again.checkpointed == again.frames)
    }

    @Test func aFreshFileIsNotCurrent() throws {
        let store = try TestStore()
        let other = try Database(path: store.dir + "/other.db")
        #expect(try !Migrations.isCurrent(other))
        #expect(try Migrations.pending(other) == Migrations.all.map(\.id))
    }

    @Test func aThrowingTransactionLeavesNothing() throws {
        let store = try TestStore()
        let before = try store.count("audit")
        let snapshot = try StoreSnapshot(store.db)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try store.db.immediate { tx in
                try Audit.record(tx, at: 1, actor: "a", action: "x", subject: "y")
                throw Boom()
            }
        }
        #expect(try store.count("audit") == before)
        #expect(try StoreSnapshot(store.db) == snapshot)
    }

    @Test func constraintsAreEnforced() throws {
        let store = try TestStore()
        let error = #expect(throws: SQLiteError.self) {
            try store.db.run("INSERT INTO environments (project_id, name) VALUES (999, 'x')")
        }
        #expect(error?.isConstraint == true)
        #expect(error?.description.contains("INSERT INTO environments") == true)
    }

    @Test func textWithANulIsStoredWhole() throws {
        // Bound with -1, SQLite kept text only up to its first NUL: less than was hashed or answered.
        let store = try TestStore()
        try store.db.run(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)",
            [.text("k\u{0}1"), .text("before\u{0}after")])
        let sql = "SELECT value, length(CAST(value AS BLOB)) FROM settings WHERE key = ?1"
        let value = try store.db.first(sql, [.text("k\u{0}1")]) {
            ($0.text(0), $0.int(1))
        }
        #expect(value?.0 == "before\u{0}after" && value?.1 == 12)
    }
}
