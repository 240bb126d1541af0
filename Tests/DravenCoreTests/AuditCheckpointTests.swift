import Glibc
import Testing

@testable import DravenCore

@Suite struct AuditCheckpointTests {
    static func store(records: Int = 5) throws -> (TestStore, CheckpointPaths) {
        let store = try TestStore()
        for i in 0..<records {
            try store.db.immediate { tx in
                try Audit.record(tx, at: store.now + Int64(i), actor: "a", action: "x", subject: "s\(i)")
            }
        }
        let paths = CheckpointPaths(store.paths)
        #expect(try AuditCheckpoints.ensureKey(paths))
        #expect(try !AuditCheckpoints.ensureKey(paths))
        return (store, paths)
    }

    static func kinds(_ store: TestStore, _ paths: CheckpointPaths) throws -> [AuditFinding.Kind] {
        try AuditVerifier.verify(db: store.db, checkpoints: paths).map(\.kind)
    }

    static func written(_ outcome: AuditCheckpoints.Outcome) -> AuditCheckpoint? {
        if case .written(let cp, _) = outcome { return cp }
        return nil
    }

    @Test func aCheckpointCoversTheHeadAndLaterRecordsStayUncovered() throws {
        let (store, paths) = try Self.store()
        #expect(try Self.kinds(store, paths) == [.noCheckpoint])
        let cp = try #require(Self.written(try AuditCheckpoints.write(store.db, paths)))
        let total = try store.count("audit")
        #expect(cp.headID == total && cp.count == total)
        #expect(try Self.kinds(store, paths) == [])
        guard case .unchanged = try AuditCheckpoints.write(store.db, paths, onlyIfMoved: true) else {
            Issue.record("moved?")
            return
        }
        try store.db.immediate { tx in
            try Audit.record(tx, at: store.now + 9, actor: "a", action: "x", subject: "later")
        }
        let report = try AuditVerifier.report(db: store.db, checkpoints: paths)
        #expect(report.findings.isEmpty && report.uncovered == 1 && report.records == total + 1)
        let next = try #require(Self.written(try AuditCheckpoints.write(store.db, paths, onlyIfMoved: true)))
        #expect(next.headID == total + 1 && next.count == total + 1)
        #expect(AuditCheckpoints.latest(paths).0 == next)
    }

    @Test func truncationRewritingAndInsertionAreNamed() throws {
        let (store, paths) = try Self.store()
        _ = try AuditCheckpoints.write(store.db, paths)
        try store.db.run("SAVEPOINT t")
        try store.db.run("DELETE FROM audit WHERE id >= 5")
        #expect(try Self.kinds(store, paths) == [.truncated])
        try store.db.run("DELETE FROM audit")
        #expect(try Self.kinds(store, paths) == [.truncated])
        try store.db.run("ROLLBACK TO t")
        // Edit record 2 and recompute every later hash: the chain is intact, the checkpoint is not.
        try store.db.run("UPDATE audit SET subject = 'forged' WHERE id = 2")
        var prev = try store.db.first("SELECT hash FROM audit WHERE id = 1") { $0.text(0) }!
        for id in Int64(2)...(try store.count("audit")) {
            let sql = "SELECT at, actor, action, subject, outcome, detail FROM audit WHERE id = ?1"
            let h = try store.db.first(sql, [.int(id)]) {
                Audit.digest(
                    prev: prev, at: $0.int(0), actor: $0.text(1), action: $0.text(2), subject: $0.text(3),
                    outcome: $0.text(4), detail: $0.text(5))
            }!
            try store.db.run(
                "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                [.text(prev), .text(h), .int(id)])
            prev = h
        }
        #expect(try Audit.verify(store.db) == nil)
        #expect(try Self.kinds(store, paths) == [.rewritten])
        guard case .refused(let findings) = try AuditCheckpoints.write(store.db, paths) else {
            Issue.record("signed")
            return
        }
        #expect(findings.map(\.kind) == [.rewritten])
        try store.db.run("RELEASE t")
    }

    @Test func aBackdatedAppendAndABadLogAreNamed() throws {
        let (store, paths) = try Self.store()
        let cp = try #require(Self.written(try AuditCheckpoints.write(store.db, paths)))
        try store.db.immediate { tx in try Audit.record(tx, at: cp.at - 3600, actor: "a", action: "x", subject: "old") }
        #expect(try Self.kinds(store, paths) == [.backdated])
        try AuditCheckpoints.append(paths.log, "drvckpt1 garbage")
        #expect(try Self.kinds(store, paths) == [.badCheckpoint, .backdated])
        chmod(paths.log, 0o666)
        #expect(try Self.kinds(store, paths).first == .badCheckpoint)
    }
}
