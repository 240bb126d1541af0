import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The console's read models (`Core/DravenCore/Console`), over stores moved only through the
/// functions, the deliverer and the vote: what each shows, that it decides as the routes do,
/// and that a person without a read grant sees nothing of a project.
@Suite struct ConsoleReadTests {
    static func ok() -> Result<OutboundResponse, TransportError> {
        .success(OutboundResponse(status: 200, body: Array(#"{"workflow_run_id":9}"#.utf8)))
    }

    static let timeout = TransportError(message: "timed out after 10s", retryable: true, timedOut: true)

    // -- JobTimeline ------------------------------------------------------------------------------

    @Test func aJobsTimelineTellsItsWholeHistoryInOrder() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("carol", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        w.h.store.now += 1
        #expect(try w.vote("carol", job).status == 403)  // no approve grant: refused, and recorded
        w.h.store.now += 1
        #expect(try w.vote("alice", job, comment: "lgtm").status == 201)
        w.h.store.now += 1
        try w.slackVote("bob", job)
        #expect(try Job.require(w.db, id: job).state == .dispatching)
        try w.deliver([.failure(ConsoleReadTests.timeout)], at: w.h.now + 1)
        let due = try #require(try Outbox.rows(w.db, job: job).first { $0.kind == "dispatch" }).nextAttemptAt
        try w.deliver([Self.ok()], at: due)
        #expect(try Job.require(w.db, id: job).state == .running)
        #expect(try w.heartbeat(job, ["step": "migrate", "percent": 40, "message": "db"]).status == 200)
        w.h.store.now += 5
        try w.finish(
            job, "succeeded", log: "https://ci.example/log/1", artifacts: ["https://ci.example/a.tgz"], release: "r1")

        let t = try JobTimeline.load(w.db, job: job, viewer: try w.viewer("carol"))
        let kinds = t.entries.map(\.kind)
        #expect(
            kinds == [
                .requested, .policy, .transition, .refused, .vote, .vote, .lock, .dispatchAttempt, .transition,
                .heartbeat, .result,
            ], "\(t.entries.map(\.summary))")
        let votes = t.entries.filter { $0.kind == .vote }
        #expect(votes.map(\.actor) == ["alice", "bob"])
        #expect(votes[0].summary == "alice approved via api — “lgtm”")
        #expect(votes[1].summary == "bob approved via slack — “ship it”")
        #expect(t.entries[1].summary.contains("2 approvals needed before the lock is taken"))
        let refused = t.entries[3]
        #expect(refused.actor == "carol" && refused.summary.contains("no grant allows you to approve app/prod"))
        let token = try #require(t.job.fencingToken)
        #expect(t.entries[6].summary == "took the lock with fencing token \(token); dispatching")
        #expect(t.entries[7].summary.hasPrefix("dispatch attempt 1 failed: timed out after 10s"))
        #expect(t.entries[8].to == .running && t.entries[8].actor == "draven-deliver")
        #expect(t.entries[9].summary == "latest heartbeat: migrate · 40 % · db")
        let result = t.entries[10]
        #expect(result.to == .succeeded && result.summary == "the runner reported succeeded, release r1")
        #expect(
            result.links == [
                .init(title: "log", url: "https://ci.example/log/1"),
                .init(title: "artifact 1", url: "https://ci.example/a.tgz"),
            ])
        // Every attempt is kept: the row says two, the trail has the failed one.
        let dispatch = try #require(t.outbound.first { $0.kind == "dispatch" })
        #expect(dispatch.attempts == 2 && dispatch.state == .delivered)
        #expect(t.lock == nil && t.queuePosition == nil, "the lock was released when the job ended")
    }

    @Test func diagnosticAndRollbackJobsAreLinkedBothWays() throws {
        let w = try ConsoleWorld()
        try w.release("v1.0.0", as: "r1")
        let failed = try w.deploy("alice", "app", "demo", "v1.1.0", expect: "dispatching")
        try w.deliver([Self.ok()], at: w.h.now)  // running: a failure now gets the failure policy
        try w.finish(failed, "failed")
        let t = try JobTimeline.load(w.db, job: failed, viewer: try w.viewer("carol"))
        try #require(t.children.map(\.kind) == [.diagnostic, .rollback])
        let (diagnostic, rollback) = (t.children[0], t.children[1])
        #expect(diagnostic.state == .dispatching && rollback.state == .queued)
        try w.finish(diagnostic.id, "succeeded", log: "https://ci.example/diag")
        let after = try JobTimeline.load(w.db, job: failed, viewer: try w.viewer("carol"))
        let note = try #require(after.entries.last { $0.kind == .diagnostic })
        #expect(note.jobs == [diagnostic.id])
        #expect(note.links == [.init(title: "diagnostic log", url: "https://ci.example/diag")])
        let child = try JobTimeline.load(w.db, job: rollback.id, viewer: try w.viewer("carol"))
        #expect(child.parent?.id == failed)
        #expect(child.entries.first?.kind == .requested && child.entries.first?.jobs == [failed])
        // The rollback took the lock the diagnostic freed.
        #expect(child.job.state == .dispatching && child.lock?.jobID == rollback.id)
    }

    @Test func aQueuedJobKnowsItsPlaceAndWhoHoldsTheLock() throws {
        let w = try ConsoleWorld()
        let holder = try w.deploy("alice", "app", "demo", "main", expect: "dispatching")
        let first = try w.deploy("alice", "app", "demo", "one", expect: "queued")
        let second = try w.deploy("carol", "app", "demo", "two", expect: "queued")
        let t = try JobTimeline.load(w.db, job: second, viewer: try w.viewer("carol"))
        #expect(t.queuePosition == 2 && t.queueHolder == holder)
        #expect(t.entries.last?.kind == .lock && t.entries.last?.jobs == [holder])
        #expect(try JobTimeline.load(w.db, job: first, viewer: try w.viewer("carol")).queuePosition == 1)
        #expect(try JobTimeline.load(w.db, job: holder, viewer: try w.viewer("carol")).lock?.jobID == holder)
    }

    @Test func aJobTheViewerMayNotReadIsNotFound() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        for who in ["dave", "olga"] {
            #expect(throws: DravenError.notFound(what: "no job \(job)")) {
                try JobTimeline.load(w.db, job: job, viewer: try w.viewer(who))
            }
            #expect(throws: DravenError.notFound(what: "no job \(job)")) {
                try JobActions.for(w.db, job: job, viewer: try w.viewer(who), now: w.h.now)
            }
        }
    }

    // -- JobActions ---------------------------------------------------------------------------------

    @Test func theActionsSayWhyNotInTheAPIsWords() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        let now = w.h.now
        let alice = try JobActions.for(w.db, job: job, viewer: try w.viewer("alice"), now: now)
        #expect(!alice.approve.allowed && alice.approve.refusal?.rule == "self_approval")
        #expect(
            alice.approve.reason == "alice asked for this deploy and app/prod does not allow approving your own deploy")
        #expect(alice.reject.allowed && alice.cancel.allowed)
        #expect(alice.rollBack.reason == "app/prod has no release before job \(job) to roll back to")
        let carol = try JobActions.for(w.db, job: job, viewer: try w.viewer("carol"), now: now)
        #expect(carol.approve.reason == "no grant allows you to approve app/prod")
        #expect(carol.cancel.allowed, "carol may deploy app/prod, so she may cancel a deploy there")
        #expect(carol.rollBack.reason == "no grant allows you to rollback app/prod")
        let bob = try JobActions.for(w.db, job: job, viewer: try w.viewer("bob"), now: now)
        #expect(bob.approve.allowed && bob.approve.note == "1 more approval needed after yours")
        #expect(bob.approvals?.summary == "0 of 2 approvals — may approve: bob, erin")
        let created = try Job.require(w.db, id: job).createdAt
        #expect(bob.approvals?.expiresAt == created + 86_400)

        #expect(try w.vote("bob", job).status == 201)
        let again = try JobActions.for(w.db, job: job, viewer: try w.viewer("bob"), now: now)
        #expect(!again.approve.allowed && again.approve.refusal == nil)
        #expect(again.approve.reason == "you already approved this deploy; your approval counts")
        #expect(again.reject.allowed, "a person who approved may still reject")
        let erin = try JobActions.for(w.db, job: job, viewer: try w.viewer("erin"), now: now)
        #expect(erin.approvals?.summary == "1 of 2 approvals — may approve: erin")
        #expect(erin.approve.note == "your approval starts the deploy")

        #expect(try w.vote("erin", job).status == 201)
        let running = try JobActions.for(w.db, job: job, viewer: try w.viewer("erin"), now: now)
        #expect(running.approvals == nil)
        #expect(running.approve.reason == "job \(job) is dispatching; only a job awaiting approval takes votes")
    }

    /// Each refusal the console shows is the one the route answers, word for word, and an
    /// allowed action is one the route takes.
    @Test func theConsoleDecidesAsTheRoutesDo() throws {
        let w = try ConsoleWorld()
        w.h.snapshots = true
        let job = try w.deploy("alice", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        let now = w.h.now
        for who in ["alice", "carol", "erin"] {
            let actions = try JobActions.for(w.db, job: job, viewer: try w.viewer(who), now: now)
            let x = try w.vote(who, job)
            if actions.approve.allowed {
                #expect(x.status == 201, "\(who): \(x.body)")
            } else {
                #expect(x.json?["detail"]?.stringValue == actions.approve.reason, "\(who)")
                x.expectUnchanged(except: "audit")
            }
        }
        let rollback = try w.h.call(Rollback.self, "POST", "/api/v1/jobs/\(job)/rollback", json: [:], token: "carol")
        #expect(
            rollback.json?["detail"]?.stringValue
                == (try JobActions.for(w.db, job: job, viewer: try w.viewer("carol"), now: now)).rollBack.reason)
    }

    @Test func theLastApprovalOfAJobInABusyRejectingEnvironmentIsRefusedAsTheVoteWouldBe() throws {
        let w = try ConsoleWorld()
        let holder = try w.deploy("alice", "app", "strict", "v1.0.0", expect: "awaiting_approval")
        #expect(try w.vote("bob", holder).status == 201)
        let job = try w.deploy("alice", "app", "strict", "v1.1.0", expect: "awaiting_approval")
        let bob = try JobActions.for(w.db, job: job, viewer: try w.viewer("bob"), now: w.h.now)
        #expect(bob.approve.refusal == .environmentBusy(environment: "strict", heldBy: holder))
        let x = try w.vote("bob", job)
        #expect(x.status == 409 && x.json?["detail"]?.stringValue == bob.approve.reason)
        // It still waits for bob: the inbox shows it, with the reason.
        let inbox = try ApprovalsInbox.load(w.db, viewer: try w.viewer("bob"), now: w.h.now)
        #expect(inbox.items.map(\.job.id) == [job] && inbox.items[0].approve.reason == bob.approve.reason)
    }

    // -- ApprovalsInbox -----------------------------------------------------------------------------

    @Test func theInboxListsWhatTheViewerMayApproveAcrossProjectsNewestFirst() throws {
        let w = try ConsoleWorld()
        let carols = try w.deploy("carol", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        let alices = try w.deploy("alice", "app", "prod", "v1.1.0", expect: "awaiting_approval")
        w.h.store.now += 60
        let vault = try w.deploy("alice", "vault", "prod", "v2.0.0", expect: "awaiting_approval")
        let now = w.h.now
        func inbox(_ who: String) throws -> [Int64] {
            try ApprovalsInbox.load(w.db, viewer: try w.viewer(who), now: now).items.map(\.job.id)
        }
        #expect(try inbox("bob") == [vault, alices, carols])
        #expect(try inbox("alice") == [carols], "not her own deploys")
        #expect(try inbox("carol").isEmpty, "no approve grant")
        #expect(try inbox("dave").isEmpty, "approve on app but no read: nothing of it")
        #expect(try inbox("olga").isEmpty, "reads vault but approves nothing")
        let item = try #require(try ApprovalsInbox.load(w.db, viewer: try w.viewer("bob"), now: now).items.first)
        #expect(item.expiresAt == now + 86_400 && item.required == 1 && item.job.requestedBy == "alice")
        #expect(item.job.ref == "refs/tags/v2.0.0" && item.approvedBy.isEmpty)

        #expect(try w.vote("bob", carols).status == 201)
        #expect(try inbox("bob") == [vault, alices], "bob's approval already counts")
        let erin = try ApprovalsInbox.load(w.db, viewer: try w.viewer("erin"), now: now).items
        #expect(erin.map(\.job.id) == [vault, alices, carols] && erin[2].approvedBy == ["bob"])
        // Past its window a job is no longer approvable, even before sweep expires it.
        #expect(try ApprovalsInbox.load(w.db, viewer: try w.viewer("erin"), now: now + 86_400 + 60).items.isEmpty)
    }

    // -- EnvironmentView ----------------------------------------------------------------------------

    @Test func anEnvironmentShowsItsHistoryLockAndQueue() throws {
        let w = try ConsoleWorld()
        let first = try w.release("v1.0.0", as: "r1")
        w.h.store.now += 10
        let second = try w.release("v1.1.0", by: "carol", as: "r2")
        let holder = try w.deploy("alice", "app", "demo", "v1.2.0", expect: "dispatching")
        let deploy = try w.deploy("carol", "app", "demo", "main", expect: "queued")
        let x = try w.h.call(
            Rollback.self, "POST", "/api/v1/rollbacks", json: ["project": "app", "environment": "demo"], token: "alice")
        #expect(x.status == 201 && x.json?["state"]?.stringValue == "queued")
        let rollback = try #require(x.json?["id"]?.intValue)

        let view = try EnvironmentView.load(w.db, project: "app", environment: "demo", viewer: try w.viewer("alice"))
        #expect(view.releases.map(\.release.jobID) == [second, first])
        #expect(view.releases.map(\.live) == [true, false])
        #expect(view.releases[0].job?.requestedBy == "carol")
        #expect(view.releases[0].rollBack.reason == "this release is live now")
        #expect(view.releases[1].rollBack.allowed)
        #expect(view.lock?.jobID == holder && view.holder?.id == holder)
        #expect(view.lock?.fencingToken == (try w.token(holder)) && view.lock?.leaseUntil != nil)
        #expect(view.queue.map(\.job.id) == [rollback, deploy], "rollbacks start before queued deploys")
        #expect(view.queue.map(\.position) == [1, 2])

        let carol = try EnvironmentView.load(w.db, project: "app", environment: "demo", viewer: try w.viewer("carol"))
        #expect(carol.releases.allSatisfy { $0.rollBack.reason == "no grant allows you to rollback app/demo" })
        for who in ["dave", "olga"] {
            #expect(throws: DravenError.notFound(what: "no environment app/demo")) {
                try EnvironmentView.load(w.db, project: "app", environment: "demo", viewer: try w.viewer(who))
            }
        }
        #expect(throws: DravenError.notFound(what: "no environment app/nowhere")) {
            try EnvironmentView.load(w.db, project: "app", environment: "nowhere", viewer: try w.viewer("dave"))
        }
        #expect(
            try EnvironmentView.load(w.db, project: "vault", environment: "prod", viewer: try w.viewer("olga"))
                .releases.isEmpty)
    }

    @Test func rollingBackToAReleaseOfABusyRejectingEnvironmentIsRefusedAsTheRouteWould() throws {
        let w = try ConsoleWorld()
        let holder = try w.deploy("alice", "app", "strict", "v1.0.0", expect: "awaiting_approval")
        #expect(try w.vote("bob", holder).status == 201)
        try w.finish(holder, "succeeded")
        let next = try w.deploy("alice", "app", "strict", "v1.1.0", expect: "awaiting_approval")
        #expect(try w.vote("bob", next).status == 201)
        try w.finish(next, "succeeded")
        let busy = try w.deploy("alice", "app", "strict", "v1.2.0", expect: "awaiting_approval")
        #expect(try w.vote("bob", busy).status == 201)
        let view = try EnvironmentView.load(w.db, project: "app", environment: "strict", viewer: try w.viewer("alice"))
        let older = view.releases[1]
        #expect(older.rollBack.refusal == .environmentBusy(environment: "strict", heldBy: busy))
        let x = try w.h.call(
            Rollback.self, "POST", "/api/v1/rollbacks",
            json: ["project": "app", "environment": "strict", "to_release": .string(String(older.release.id))],
            token: "alice")
        #expect(x.status == 409 && x.json?["detail"]?.stringValue == older.rollBack.reason)
    }

    // -- AuditPage ----------------------------------------------------------------------------------

    /// A store with records about `app` and `vault`.
    static func audited() throws -> (ConsoleWorld, app: Int64, vault: Int64) {
        let w = try ConsoleWorld()
        let app = try w.deploy("carol", "app", "prod", "v1.0.0", expect: "awaiting_approval")
        #expect(try w.vote("dave", app).status == 403)  // dave may not read app: refused, about app
        #expect(try w.vote("alice", app).status == 201)
        let vault = try w.deploy("alice", "vault", "prod", "v1.0.0", expect: "awaiting_approval")
        #expect(try w.vote("bob", vault).status == 201)
        return (w, app, vault)
    }

    static func page(_ w: ConsoleWorld, _ who: String, _ filter: AuditPage.Filter = .init(), window: Int = 2000)
        throws -> AuditPage
    {
        try AuditPage.load(
            w.db, viewer: try w.viewer(who), filter: filter, checkpoints: CheckpointPaths(w.h.store.paths),
            window: window)
    }

    @Test func theAuditPageShowsOnlyWhatTheViewerMayRead() throws {
        let (w, app, vault) = try Self.audited()
        let carol = try Self.page(w, "carol").records
        #expect(!carol.isEmpty && carol.allSatisfy { $0.project == "app" })
        #expect(carol.contains { $0.subject == "job/\(app)" && $0.actor == "dave" }, "a refusal about app")
        #expect(zip(carol, carol.dropFirst()).allSatisfy { $0.id > $1.id }, "newest first")
        let olga = try Self.page(w, "olga").records
        #expect(!olga.isEmpty && olga.allSatisfy { $0.project == "vault" })
        #expect(olga.contains { $0.subject == "job/\(vault)" && $0.action == "approval.approve" })
        let dave = try Self.page(w, "dave").records
        #expect(dave.isEmpty, "dave reads nothing, and his refusal is about app: \(dave.map(\.subject))")
        let bob = try Self.page(w, "bob").records
        #expect(Set(bob.compactMap(\.project)) == ["app", "vault"])
    }

    @Test func theAuditPageFiltersAndPages() throws {
        let (w, app, vault) = try Self.audited()
        let byAlice = try Self.page(w, "bob", .init(person: "alice")).records
        #expect(!byAlice.isEmpty && byAlice.allSatisfy { $0.actor == "alice" })
        let approvals = try Self.page(w, "bob", .init(action: "approval.")).records
        #expect(approvals.map(\.subject) == ["job/\(vault)", "job/\(app)"])
        #expect(try Self.page(w, "bob", .init(action: "approval")).records.isEmpty, "exact unless it ends with .")
        let vaults = try Self.page(w, "bob", .init(project: "vault")).records
        #expect(!vaults.isEmpty && vaults.allSatisfy { $0.project == "vault" })

        let all = try Self.page(w, "bob").records.map(\.id)
        var paged: [Int64] = []
        var before: Int64? = nil
        repeat {
            let page = try Self.page(w, "bob", .init(before: before, limit: 2))
            #expect(page.records.count <= 2)
            paged += page.records.map(\.id)
            before = page.next
        } while before != nil
        #expect(paged == all)
        // A short window keeps a page cheap: it goes on below what it read.
        let short = try Self.page(w, "olga", .init(person: "carol"), window: 3)
        #expect(short.records.isEmpty && short.read == 3 && short.next != nil)
    }

    @Test func theAuditPageSaysWhetherTheChainVerifies() throws {
        let (w, _, _) = try Self.audited()
        let paths = CheckpointPaths(w.h.store.paths)
        let none = try #require(try Self.page(w, "bob").verification)
        #expect(none.intact && none.checkpoint == nil && none.full)
        #expect(try AuditCheckpoints.ensureKey(paths))
        guard case .written = try AuditCheckpoints.write(w.db, paths) else {
            Issue.record("no checkpoint written")
            return
        }
        try w.deploy("alice", "app", "demo", "main", expect: "dispatching")
        let since = try #require(try Self.page(w, "bob").verification)
        #expect(since.intact && since.checkpoint != nil && !since.full && since.uncovered > 0)
        #expect(since.records == (try w.h.store.count("audit")))
        let last = try #require(try w.db.scalar("SELECT max(id) FROM audit"))
        try w.db.run("UPDATE audit SET detail = '{}' WHERE id = ?1", [.int(last)])
        let broken = try #require(try Self.page(w, "bob").verification)
        #expect(!broken.intact && broken.findings.first?.kind == .chainBroken)
    }
}

extension DravenError {
    /// The policy rule a `policyDenied` names.
    var rule: String? { if case .policyDenied(let rule, _) = self { rule } else { nil } }
}

extension Exchange {
    /// Expects every table but `table` exactly as before, and nothing handed to the deliverer.
    func expectUnchanged(except table: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outbox.isEmpty, sourceLocation: sourceLocation)
        let changed = after.changes(since: before).keys.filter { $0 != table }
        #expect(changed.isEmpty, "changed: \(changed)", sourceLocation: sourceLocation)
    }
}
