import Testing

@testable import DravenCore

/// The table owners' own contracts: `Deliveries.insertOnce` (dedupe and replay) and `Job`'s
/// column list.
@Suite struct StoreOwnerTests {
    @Test func insertOnceRemembersEachSourceAndKeyOnce() throws {
        let store = try TestStore()
        func insert(_ source: String, _ key: String) throws -> Int64? {
            try store.db.immediate { tx in
                try Deliveries.insertOnce(tx, .init(source: source, key: key, event: "push"), now: store.now)
            }
        }
        let first = try insert("github:shop", "d-1")
        #expect(first != nil)
        #expect(try insert("github:shop", "d-1") == nil, "the same source and key is a duplicate")
        let other = try insert("gitlab:shop", "d-1")
        #expect(other != nil && other != first, "another source keeps its own keys")
        #expect(try insert("github:shop", "d-2") != nil)
        #expect(try store.count("deliveries") == 3)
        #expect(try Deliveries.seen(store.db, source: "github:shop", key: "d-1"))
        #expect(try !Deliveries.seen(store.db, source: "runner", key: "d-1"))
    }

    /// Every field of `Job` comes from its own column: each column holds a value no other does,
    /// so a list that shifted would show here.
    @Test func theColumnListDecodesEveryFieldOfACreatedJob() throws {
        let store = try TestStore()
        let eid = try store.environmentID("shop", "staging")
        let pid = try #require(try store.db.scalar("SELECT id FROM projects WHERE name = 'shop'"))
        let parent = try store.newJob()
        let release = try store.db.immediate { tx -> Int64 in
            try tx.db.run(
                """
                INSERT INTO releases (environment_id, job_id, ref, ref_kind, sha, release_id, live_from)
                VALUES (?1, ?2, 'refs/heads/develop', 'branch', NULL, 'r-1', ?3)
                """, [.int(eid), .int(parent), .int(store.now)])
            return tx.db.lastInsertRowID
        }
        let sha = String(repeating: "ab", count: 20)
        let alice = try store.personID("alice")
        var new = StateMachine.NewJob(
            kind: .rollback, projectID: pid, environmentID: eid,
            ref: GitRef(kind: .tag, name: "v1.2.3"), sha: sha, reason: "undo it",
            requestedBy: alice, policyVersion: 7, parentJobID: parent,
            idempotencyKey: "key-1", requestDigest: "digest-1")
        new.toRelease = release
        new.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let created = store.now + 11
        let id = try store.db.immediate { tx in
            try StateMachine.create(tx, new, actor: "alice", subject: "shop/staging", now: created)
        }
        // The columns `create` leaves empty, filled as a dispatch, a heartbeat and a callback would.
        try store.db.immediate { tx in
            try tx.db.run(
                """
                UPDATE jobs SET fencing_token = 5, run_id = 'run-9', run_url = 'https://ci.example/run/9',
                updated_at = ?2 WHERE id = ?1
                """,
                [.int(id), .int(created + 22)])
            _ = try Job.recordHeartbeat(tx, job: id, progress: #"{"step":"migrate"}"#, now: created + 33)
            try Job.recordResult(tx, job: id, logURL: "https://ci.example/log/9", releaseID: "r-2")
        }
        let job = try Job.require(store.db, id: id)
        #expect(job.id == id)
        #expect(job.kind == .rollback)
        #expect(job.projectID == pid && job.project == "shop")
        #expect(job.environmentID == eid && job.environment == "staging")
        #expect(job.ref == "refs/tags/v1.2.3" && job.refKind == "tag")
        #expect(job.sha == sha)
        #expect(job.reason == "undo it")
        #expect(job.state == .pending)
        #expect(job.requestedBy == "alice" && job.requestedByID == alice)
        #expect(job.policyVersion == 7)
        #expect(job.fencingToken == 5)
        #expect(job.runID == "run-9")
        #expect(job.runURL == "https://ci.example/run/9")
        #expect(job.parentJobID == parent)
        #expect(job.createdAt == created && job.updatedAt == created + 22)
        #expect(job.logURL == "https://ci.example/log/9")
        #expect(job.heartbeatAt == created + 33)
        #expect(job.progress == #"{"step":"migrate"}"#)
        #expect(job.toRelease == release)
        #expect(job.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(Job.Column.allCases.count == 25)  // every field above, run_url and traceparent included
        #expect(try Job.idempotent(store.db, requestedBy: alice, key: "key-1")?.id == id)
        #expect(try Job.idempotent(store.db, requestedBy: alice, key: "key-1")?.requestDigest == "digest-1")
    }
}
