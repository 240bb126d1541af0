import Testing

@testable import DravenCore
@testable import DravenFunctions

/// `deploy PROJECT ENV REF [reason]` from chat (Tests/e2e/test_chat_deploy.py runs it through nginx):
/// the same code as `POST /api/v1/deploys`, as the linked person; refusals are replies with an API
/// refusal's record; a resent request deploys nothing.
@Suite struct ChatDeployTests {
    typealias Reply = ChatOpsRefusalTests.Reply

    static func mattermost(_ w: RouteWorld, _ user: String, _ text: String, trigger: String) throws -> Exchange {
        try w.h.call(
            Approve.self, "POST", "/chatops/mattermost",
            body: RouteWorld.form([("user_id", user), ("text", text), ("trigger_id", trigger)]),
            contentType: "application/x-www-form-urlencoded",
            headers: ["Authorization": "Token " + RouteWorld.secrets["mm-token"]!])
    }

    static let replies: [Reply] = [
        Reply(
            name: "slack: a deploy by an unlinked user", status: 403, type: "unknown-chat-user",
            record: audited("slack:UNOBODY", "chatops/slack"), text: "your slack user UNOBODY is not linked"
        ) { w in try w.slack(w.slash("UNOBODY", "deploy app live refs/heads/main")) },
        Reply(
            name: "slack: no deploy grant", status: 403, type: "forbidden", record: audited("dave", "app/live"),
            text: "no grant allows you to deploy app/live"
        ) { w in try w.slack(w.slash("UDAVE", "deploy app live refs/heads/main")) },
        Reply(
            name: "teams: against the policy", status: 403, type: "policy-denied",
            record: audited("alice", "app/staging"), text: "branch feature does not match"
        ) { w in
            let body = RouteWorld.teamsActivity("aad-alice", "<at>draven</at> deploy app staging refs/heads/feature")
            return try w.teams(body, authorization: RouteWorld.teamsMAC(body))
        },
        Reply(
            name: "mattermost: an unknown environment", status: 404, type: "not-found",
            record: audited("alice", "app/nowhere"), text: "project app has no environment nowhere"
        ) { w in try w.mattermost("mm-alice", "deploy app nowhere main") },
        Reply(
            name: "slack: no ref", status: 422, type: "invalid-field", record: audited("alice", "chatops/slack"),
            text: ChatCommand.deployUsage
        ) { w in try w.slack(w.slash("UALICE", "deploy everything")) },
        Reply(
            name: "slack: a ref git would refuse", status: 422, type: "invalid-field",
            record: audited("alice", "app/live"), text: "/ref: may not start with '-'"
        ) { w in try w.slack(w.slash("UALICE", "deploy app live refs/heads/-x")) },
        Reply(
            name: "mattermost: a busy environment that rejects", status: 409, type: "environment-busy",
            record: audited("bob", "app/busy"), text: "busy is locked by job"
        ) { w in try w.mattermost("mm-bob", "deploy app busy main") },
    ]

    @Test(arguments: replies) func refusalsAreRepliesAndRecords(_ c: Reply) throws {
        try ChatOpsRefusalTests().refusalsOfVerifiedUsersAreRepliesAndRecords(c)
    }

    /// What a chat deploy writes is what the API's deploy writes — the same job, history, lock,
    /// dispatch and audit records — but for two things: its audit records say `via` the platform, and
    /// `deliveries` remembers the request (so a copy of it deploys nothing).
    @Test func aChatDeployIsTheAPIsDeploy() throws {
        let api = try RouteWorld()
        let chat = try RouteWorld()
        let a = try api.h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "app", "environment": "live", "ref": "refs/heads/main", "reason": "fix the cart"],
            token: "alice")
        let c = try chat.slack(chat.slash("UALICE", "deploy app live refs/heads/main fix the cart"))
        #expect(a.status == 201 && c.status == 200)
        let id = try #require(a.json?["id"]?.intValue)
        #expect(
            c.json?["text"]?.stringValue
                == "draven: alice asked for deploy #\(id) of app refs/heads/main to live — deploying")
        #expect(c.json?["response_type"]?.stringValue == "in_channel")
        #expect(a.outbox == c.outbox && !c.outbox.isEmpty)
        for table in ["jobs", "job_events", "locks", "outbox"] {
            #expect(c.after[table] == a.after[table], "\(table)")
        }
        let apiAudit = a.after.changes(since: a.before)["audit"]?.new ?? []
        let chatAudit = c.after.changes(since: c.before)["audit"]?.new ?? []
        #expect(apiAudit.count == chatAudit.count && !apiAudit.isEmpty)
        let columns = a.after["audit"].columns
        func withoutVia(_ row: [StoreSnapshot.Value]) throws -> [String: StoreSnapshot.Value] {
            var record = Dictionary(uniqueKeysWithValues: zip(columns, row))
            var detail = try #require(try JSON.parse(record["detail"]?.text ?? "").objectValue)
            #expect(detail["via"] == "slack")
            detail["via"] = nil
            record["detail"] = .text(JSON.object(detail).serialized())
            record["hash"] = nil
            record["prev_hash"] = nil
            return record
        }
        for (mine, theirs) in zip(chatAudit, apiAudit) {
            var expected = Dictionary(uniqueKeysWithValues: zip(columns, theirs))
            expected["hash"] = nil
            expected["prev_hash"] = nil
            #expect(try withoutVia(mine) == expected)
        }
        let remembered = c.after.changes(since: c.before)["deliveries"]?.new ?? []
        #expect(remembered.count == 1)
        let row = Dictionary(uniqueKeysWithValues: zip(c.after["deliveries"].columns, remembered.first ?? []))
        #expect(row["source"] == .text("slack") && row["event"] == .text("deploy") && row["job_id"] == .int(id))
    }

    /// Mattermost's scheme has no signature to remember: a deploy is remembered by the command's
    /// trigger id, and the same command again deploys nothing.
    @Test func aResentMattermostDeployIsRefused() throws {
        let w = try RouteWorld()
        let first = try Self.mattermost(w, "mm-alice", "deploy app live refs/heads/main", trigger: "trig-1")
        #expect(first.status == 200 && first.json?["text"]?.stringValue?.hasSuffix("— deploying") == true)
        let again = try Self.mattermost(w, "mm-alice", "deploy app live refs/heads/main", trigger: "trig-1")
        again.expectRefused(401, "bad-signature", .audited(actor: "alice", subject: "app/live"))
        // Another command (another trigger id) is another deploy: it queues behind the first.
        let other = try Self.mattermost(w, "mm-alice", "deploy app live refs/heads/main", trigger: "trig-2")
        #expect(other.json?["text"]?.stringValue?.hasSuffix("— queued until the environment is free") == true)
    }

    /// Slack deploy signatures are forgotten like votes' once their timestamp is refused anyway.
    @Test func oldSlackDeploySignaturesAreForgotten() throws {
        let w = try RouteWorld()
        #expect(try w.slack(w.slash("UBOB", "deploy app live refs/heads/main")).status == 200)
        let count = "SELECT count(*) FROM deliveries WHERE source = 'slack' AND event = 'deploy'"
        #expect(try w.h.store.db.scalar(count) == 1)
        try Deliveries.forgetOldSlackSignatures(w.h.store.db, now: w.h.now + 2 * SignedRequest.window + 1)
        #expect(try w.h.store.db.scalar(count) == 0)
    }
}
