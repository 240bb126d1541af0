import Testing

@testable import DravenCore

@Suite struct StateMachineTests {
    /// Every (from, to) pair, split into the allowed and the refused.
    static let allPairs: [(JobState, JobState)] = JobState.allCases.flatMap { from in
        JobState.allCases.map { (from, $0) }
    }
    static let allowed = allPairs.filter { $0.0.canMove(to: $0.1) }
    static let refused = allPairs.filter { !$0.0.canMove(to: $0.1) }

    @Test func theTableIsDesignMd() {
        let expected: Set<String> = [
            "pending>awaiting_approval", "pending>queued", "pending>dispatching", "pending>rejected",
            "pending>cancelled",
            "awaiting_approval>queued", "awaiting_approval>dispatching", "awaiting_approval>rejected",
            "awaiting_approval>expired",
            "awaiting_approval>cancelled",
            "queued>dispatching", "queued>cancelled",
            "dispatching>running", "dispatching>failed", "dispatching>timed_out", "dispatching>cancelled",
            "running>succeeded", "running>failed", "running>timed_out", "running>cancelled",
        ]
        #expect(Set(Self.allowed.map { "\($0.0.rawValue)>\($0.1.rawValue)" }) == expected)
        for terminal in [JobState.succeeded, .failed, .timedOut, .cancelled, .rejected, .expired] {
            #expect(terminal.isTerminal)
        }
    }

    /// Puts a fresh job into `state` by the shortest allowed path (lock taken where needed).
    static func job(in state: JobState, _ store: TestStore) throws -> Int64 {
        let id = try store.newJob("demo")
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        let path: [JobState] =
            switch state {
            case .pending: []
            case .awaitingApproval: [.awaitingApproval]
            case .rejected, .expired: [.awaitingApproval, state]
            case .queued: [.queued]
            case .dispatching: [.dispatching]
            case .running: [.dispatching, .running]
            case .succeeded, .failed, .timedOut: [.dispatching, .running, state]
            case .cancelled: [.cancelled]
            }
        for step in path {
            try store.db.immediate { tx in
                if step == .dispatching {
                    #expect(
                        try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: store.now) == .dispatching)
                } else {
                    try StateMachine.transition(tx, job: id, to: step, actor: "t", now: store.now)
                }
            }
        }
        #expect(try store.state(id) == state)
        return id
    }

    @Test(arguments: allowed.filter { $0.1 != .dispatching })
    func allowedTransitionWritesJobEventAndAudit(_ pair: (JobState, JobState)) throws {
        let store = try TestStore()
        let id = try Self.job(in: pair.0, store)
        let events = try store.count("job_events", "job_id = \(id)")
        let audits = try store.count("audit")
        let outcome = try store.db.immediate { tx in
            try StateMachine.transition(tx, job: id, to: pair.1, actor: "t", now: store.now)
        }
        #expect(outcome == .moved(from: pair.0, to: pair.1))
        #expect(try store.state(id) == pair.1)
        #expect(try store.count("job_events", "job_id = \(id)") == events + 1)
        #expect(try store.count("audit") == audits + 1)
    }

    @Test(arguments: [JobState.pending, .awaitingApproval, .queued])
    func dispatchingTakesTheLockAndWritesADispatch(_ from: JobState) throws {
        let store = try TestStore()
        let id = try Self.job(in: from, store)
        let env = try store.environmentID("shop", "demo")
        let policy = try Policy.load(store.db, environmentID: env)
        // A queued job only starts once the lock is free; here nobody holds it.
        #expect(
            try store.db.immediate { tx in
                try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: store.now)
            } == .dispatching)
        #expect(try Locks.holder(store.db, environment: env)?.jobID == id)
        #expect(try store.count("outbox", "kind = 'dispatch' AND job_id = \(id)") == 1)
    }

    // Dispatching is only reachable through start (a precondition of transition): not a case here.
    @Test(arguments: refused.filter { $0.1 != .dispatching })
    func refusedTransitionChangesNothingButIsRecorded(_ pair: (JobState, JobState)) throws {
        let store = try TestStore()
        let id = try Self.job(in: pair.0, store)
        let audits = try store.count("audit")
        let locks = try store.db.query("SELECT environment_id, job_id, fencing_token FROM locks") {
            "\($0.int(0))/\($0.optionalInt(1) ?? -1)/\($0.int(2))"
        }
        let before = try StoreSnapshot(store.db)
        let outcome = try store.db.immediate { tx in
            try StateMachine.transition(tx, job: id, to: pair.1, actor: "t", now: store.now)
        }
        #expect(outcome == .ignored(current: pair.0))
        #expect(try store.state(id) == pair.0)
        #expect(try store.count("audit") == audits)
        #expect(try store.count("job_events", "job_id = \(id) AND event = 'ignored'") == 1)
        #expect(
            try store.db.query("SELECT environment_id, job_id, fencing_token FROM locks") {
                "\($0.int(0))/\($0.optionalInt(1) ?? -1)/\($0.int(2))"
            } == locks)
        // Nothing else changed: every table as before but for that one event.
        let after = try StoreSnapshot(store.db)
        #expect(Set(after.changes(since: before).keys) == ["job_events"])
        let old = before["job_events"].rows
        #expect(Array(after["job_events"].rows.prefix(old.count)) == old)
        let added = after["job_events"].records.dropFirst(old.count)
        #expect(added.count == 1 && added.first?["job_id"] == .int(id) && added.first?["event"] == .text("ignored"))
    }

    @Test(arguments: [JobState.succeeded, .failed, .timedOut, .cancelled, .rejected, .expired])
    func startNeverMovesATerminalJob(_ terminal: JobState) throws {
        let store = try TestStore()
        let id = try Self.job(in: terminal, store)
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        let outbox = try store.count("outbox")
        let events = try store.count("job_events")
        let before = try StoreSnapshot(store.db)
        #expect(
            try store.db.immediate { tx in
                try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: store.now)
            } == terminal)
        #expect(try store.count("outbox") == outbox)
        #expect(try store.count("job_events") == events)
        #expect(try StoreSnapshot(store.db) == before)
    }

    @Test func endingAJobReleasesTheLockAndStartsTheOldestQueued() throws {
        let store = try TestStore()
        let env = try store.environmentID("shop", "demo")
        let policy = try Policy.load(store.db, environmentID: env)
        let first = try store.newJob()
        let second = try store.newJob()
        let third = try store.newJob()
        let states = try store.db.immediate { tx in
            try [first, second, third].map {
                try StateMachine.start(tx, job: $0, policy: policy, actor: "t", now: store.now)
            }
        }
        #expect(states == [.dispatching, .queued, .queued])
        let firstToken = try #require(try Locks.holder(store.db, environment: env)).token
        try store.db.immediate { tx in
            try StateMachine.transition(tx, job: first, to: .running, actor: "t", now: store.now)
            try StateMachine.transition(tx, job: first, to: .failed, actor: "t", now: store.now)
        }
        let holder = try #require(try Locks.holder(store.db, environment: env))
        #expect(holder.jobID == second)
        #expect(holder.token == firstToken + 1, "fencing tokens only grow")
        #expect(try store.state(second) == .dispatching)
        #expect(try store.state(third) == .queued)
        #expect(try store.count("outbox", "kind = 'dispatch'") == 2)
    }

    @Test func rejectPolicyThrowsAndTheTransactionLeavesNothing() throws {
        let store = try TestStore()
        let env = try store.environmentID("shop", "staging")
        let policy = try Policy.load(store.db, environmentID: env)
        let ref = GitRef(kind: .branch, name: "main")
        let first = try store.newJob("staging", ref: ref)
        try store.db.immediate { tx in
            _ = try StateMachine.start(tx, job: first, policy: policy, actor: "t", now: store.now)
        }
        let jobs = try store.count("jobs")
        let audits = try store.count("audit")
        let outbox = try store.count("outbox")
        let before = try StoreSnapshot(store.db)
        #expect(throws: DravenError.environmentBusy(environment: "staging", heldBy: first)) {
            try store.db.immediate { tx in
                let pid = try tx.db.scalar("SELECT id FROM projects WHERE name = 'shop'")!
                let id = try StateMachine.create(
                    tx,
                    .init(
                        projectID: pid, environmentID: env, ref: ref, sha: nil, reason: "",
                        requestedBy: try store.personID("carol"), policyVersion: policy.version),
                    actor: "carol", subject: "shop/staging", now: store.now)
                try StateMachine.start(tx, job: id, policy: policy, actor: "t", now: store.now)
            }
        }
        #expect(try store.count("jobs") == jobs)
        #expect(try store.count("audit") == audits)
        #expect(try store.count("outbox") == outbox)
        #expect(try StoreSnapshot(store.db) == before)
    }
}
