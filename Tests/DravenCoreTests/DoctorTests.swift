import Glibc
import Testing

@testable import DravenCore

/// `draven doctor`'s checks: a healthy store passes, and each check fires on a store corrupted the
/// way it guards against.
@Suite struct DoctorTests {
    /// A store with a bit of everything: a succeeded deploy, a running one holding `demo`'s lock with
    /// one queued behind it, and one dispatching on `other` (its dispatch row still to deliver).
    struct World {
        let store: TestStore
        let done, running, queued, dispatching: Int64
        var db: Database { store.db }

        init() throws {
            store = try recoveryStore(onFailure: [])
            done = try store.running()
            try store.end(done, .succeeded)
            running = try store.running()
            queued = try store.started()
            dispatching = try store.started("other")
        }

        func sql(_ text: String, _ values: [SQLValue] = []) throws { try db.run(text, values) }

        /// The findings of one check on the store as it is now.
        func findings(_ check: Doctor.Check) -> [Doctor.Finding] {
            Doctor.check(db, now: store.now).findings[check] ?? []
        }

        func dispatchRow(_ job: Int64) throws -> Int64 {
            try db.scalar("SELECT id FROM outbox WHERE job_id = ?1 AND kind = 'dispatch'", [.int(job)])!
        }
    }

    @Test func aHealthyStorePassesEveryCheck() throws {
        let world = try World()
        #expect(try world.store.state(world.queued) == .queued && world.store.state(world.dispatching) == .dispatching)
        let report = Doctor.check(world.db, now: world.store.now)
        #expect(report.healthy, "\(report.all)")
        #expect(Set(report.findings.keys) == Set(Doctor.Check.allCases))
    }

    // -- integrity ----------------------------------------------------------------------------

    @Test func aRowNamingAMissingJobIsAForeignKeyProblem() throws {
        let world = try World()
        try world.db.execute("PRAGMA foreign_keys=OFF")
        try world.sql("INSERT INTO job_events (job_id, at, event, actor) VALUES (9999, 1, 'note', 't')")
        try world.db.execute("PRAGMA foreign_keys=ON")
        let found = world.findings(.integrity)
        let event = try world.db.scalar("SELECT max(id) FROM job_events")!
        #expect(found.map(\.message) == ["job_events row \(event) refers to a missing jobs row"])
    }

    @Test func aDamagedIndexPageFailsTheIntegrityCheck() throws {
        let world = try World()
        let root = try world.db.scalar("SELECT rootpage FROM sqlite_master WHERE name = 'jobs_state'")!
        let pageSize = try world.db.scalar("PRAGMA page_size")!
        try world.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        // Turn the index's root page into an empty leaf: the table has rows its index lacks.
        var page = [UInt8](repeating: 0, count: Int(pageSize))
        page[0] = 0x0a
        page[5] = UInt8(truncatingIfNeeded: pageSize >> 8)
        page[6] = UInt8(truncatingIfNeeded: pageSize)
        let fd = open(world.store.paths.database, O_WRONLY)
        #expect(fd >= 0)
        #expect(pwrite(fd, page, page.count, off_t((root - 1) * pageSize)) == page.count)
        close(fd)
        let fresh = try Database(path: world.store.paths.database, create: false)
        let found = Doctor.check(fresh, now: world.store.now).findings[.integrity] ?? []
        #expect(found.contains { $0.message.contains("jobs_state") }, "\(found)")
    }

    // -- locks --------------------------------------------------------------------------------

    @Test func aLockHeldByAJobThatEndedIsNamed() throws {
        let world = try World()
        try world.sql("UPDATE locks SET job_id = ?1 WHERE job_id = ?2", [.int(world.done), .int(world.running)])
        let found = world.findings(.locks).map(\.description)
        #expect(found.contains { $0.contains("held by job \(world.done), which is succeeded (has ended)") }, "\(found)")
        #expect(
            found.contains {
                $0.hasPrefix("locks: job/\(world.running): running") && $0.contains("held by job \(world.done)")
            })
    }

    @Test func aLockWhoseTokenIsNotItsJobsIsNamed() throws {
        let world = try World()
        try world.sql("UPDATE locks SET fencing_token = fencing_token + 5 WHERE job_id = ?1", [.int(world.running)])
        let found = world.findings(.locks).map(\.message)
        #expect(found.contains { $0.contains("but job \(world.running) carries") }, "\(found)")
        #expect(found.contains { $0.contains("held by it, with token") })
    }

    @Test func twoJobsHoldingOneEnvironmentAreNamed() throws {
        let world = try World()
        try world.sql("UPDATE jobs SET state = 'running', fencing_token = 1 WHERE id = ?1", [.int(world.queued)])
        let found = world.findings(.locks)
        #expect(found.map(\.subject) == ["job/\(world.queued)"], "\(found)")
        #expect(found[0].message.contains("held by job \(world.running)"))
    }

    @Test func aLockHeldByAMissingJobOrWithoutALeaseIsNamed() throws {
        let world = try World()
        try world.sql("UPDATE locks SET lease_until = NULL WHERE job_id = ?1", [.int(world.running)])
        #expect(world.findings(.locks).map(\.message) == ["held by job \(world.running) with no lease"])
    }

    // -- events -------------------------------------------------------------------------------

    @Test func aTransitionTheStateMachineRefusesIsNamed() throws {
        let world = try World()
        try world.sql(
            """
            INSERT INTO job_events (job_id, at, event, from_state, to_state, actor)
            VALUES (?1, 1, 'transition', 'succeeded', 'running', 't')
            """,
            [.int(world.done)])
        let found = world.findings(.events)
        #expect(found.map(\.subject) == ["job/\(world.done)", "job/\(world.done)"], "\(found)")
        #expect(found[0].message == "succeeded → running is not a transition the state machine allows")
        #expect(found[1].message == "its history ends in running but the job is succeeded")
    }

    @Test func aHistoryWithAMissingStepOrNoCreationIsNamed() throws {
        let world = try World()
        // The running job's dispatching → running step is gone: it jumps from dispatching's predecessor.
        try world.sql(
            "DELETE FROM job_events WHERE job_id = ?1 AND event = 'transition' AND to_state = 'dispatching'",
            [.int(world.running)])
        try world.sql("DELETE FROM job_events WHERE job_id = ?1 AND event = 'created'", [.int(world.queued)])
        let found = world.findings(.events).map(\.description)
        let missing = "events: job/\(world.running): a transition from dispatching while the job was pending"
        #expect(found.contains(missing), "\(found)")
        #expect(found.contains("events: job/\(world.queued): a transition to queued before `created`"), "\(found)")
    }

    @Test func aJobWithNoHistoryOrAStateItsHistoryDoesNotReachIsNamed() throws {
        let world = try World()
        try world.sql("DELETE FROM job_events WHERE job_id = ?1", [.int(world.queued)])
        try world.sql("UPDATE jobs SET state = 'cancelled' WHERE id = ?1", [.int(world.done)])
        let found = world.findings(.events).map(\.description)
        #expect(
            found == [
                "events: job/\(world.done): its history ends in succeeded but the job is cancelled",
                "events: job/\(world.queued): no `created` event",
            ], "\(found)")
    }

    @Test func historyFollowsTheStateMachinesOwnTable() {
        // Every allowed pair passes and every other pair fails: the check reads JobState.next.
        for from in JobState.allCases where from != .pending {
            for to in JobState.allCases {
                var history = StateMachine.History()
                _ = history.add(event: "created", from: nil, to: "pending")
                if from != .pending {
                    let via: JobState = JobState.pending.canMove(to: from) ? .pending : .awaitingApproval
                    if via != .pending { _ = history.add(event: "transition", from: "pending", to: via.rawValue) }
                    guard via.canMove(to: from) else { continue }
                    _ = history.add(event: "transition", from: via.rawValue, to: from.rawValue)
                }
                let why = history.add(event: "transition", from: from.rawValue, to: to.rawValue)
                #expect((why == nil) == from.canMove(to: to), "\(from) → \(to): \(why ?? "ok")")
            }
        }
    }

    // -- outbox -------------------------------------------------------------------------------

    @Test func aDeadRowWithoutAReasonAndALostDispatchAreNamed() throws {
        let world = try World()
        let row = try world.dispatchRow(world.dispatching)
        try world.sql("UPDATE outbox SET state = 'dead', last_error = NULL WHERE id = ?1", [.int(row)])
        let found = world.findings(.outbox).map(\.description)
        #expect(
            found == [
                "outbox: outbox/\(row): dispatch row of job \(world.dispatching) dead, with no reason recorded",
                "outbox: job/\(world.dispatching): dispatching with no dispatch row left to deliver",
            ], "\(found)")
    }

    @Test func aPendingRowThatIsNeverDueOrADeletedDispatchIsNamed() throws {
        let world = try World()
        let row = try world.dispatchRow(world.running)
        try world.sql(
            "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1",
            [.int(row), .int(world.store.now + 30 * 86_400)])
        try world.sql("DELETE FROM outbox WHERE id = ?1", [.int(try world.dispatchRow(world.dispatching))])
        let found = world.findings(.outbox).map(\.description)
        #expect(found.count == 2, "\(found)")
        #expect(found[0].hasPrefix("outbox: outbox/\(row): dispatch row of job \(world.running) pending, next attempt"))
        #expect(found[0].hasSuffix("not due within 86400 s"))
        #expect(found[1] == "outbox: job/\(world.dispatching): dispatching with no dispatch row left to deliver")
    }

    @Test func aDeliveredRowWithoutItsTimeIsNamed() throws {
        let world = try World()
        let row = try world.dispatchRow(world.done)
        try world.sql("UPDATE outbox SET state = 'delivered', delivered_at = NULL WHERE id = ?1", [.int(row)])
        let expected = ["dispatch row of job \(world.done) delivered, with no delivery time"]
        #expect(world.findings(.outbox).map(\.message) == expected)
    }

    // -- audit --------------------------------------------------------------------------------

    @Test func anEditedAuditRecordIsNamed() throws {
        let world = try World()
        try world.sql("UPDATE audit SET detail = '{}' WHERE id = 3")
        #expect(world.findings(.audit).map(\.subject) == ["audit/3"])
        // The same verification `draven audit verify` runs.
        #expect(try Audit.verify(world.db) == 3)
    }

    @Test func aCheckThatCannotRunIsAFindingNotACrash() throws {
        let world = try World()
        try world.db.execute("PRAGMA foreign_keys=OFF; DROP TABLE approval_messages; DROP TABLE approvals;")
        try world.db.execute("DROP TABLE outbox")
        let report = Doctor.check(world.db, now: world.store.now)
        #expect(!report.healthy)
        #expect(report.findings[.outbox]?.first?.message.hasPrefix("the check could not run") == true)
        #expect(report.findings[.locks]?.isEmpty == true)
    }
}
