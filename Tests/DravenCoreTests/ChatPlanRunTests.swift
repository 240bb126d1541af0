import Testing

@testable import DravenCore
@testable import DravenFunctions

/// `plan run PLAN [key=value…] [-- reason]` from chat (Tests/e2e/test_chat_plan.py runs it
/// through nginx): the same code as `POST /api/v1/plans/{id}/runs`, as the linked person;
/// refusals are replies with an API refusal's record; a resent request starts nothing.
@Suite struct ChatPlanRunTests {
    typealias Reply = ChatOpsRefusalTests.Reply

    /// `ship`: one deploy step on app/live (any branch; its lock queues).
    static let plan = Plan(
        id: "ship", version: 1, inputs: [.init(name: "ref", type: .branch, defaultValue: "main")],
        steps: [PlanEngineTests.deploy("live", "app", "live")])

    static func world() throws -> RouteWorld {
        let w = try RouteWorld()
        try w.h.store.db.immediate { tx in _ = try Plans.apply(tx, plan, by: "test", now: w.h.now) }
        return w
    }

    static let replies: [Reply] = [
        Reply(
            name: "slack: a run by an unlinked user", status: 403, type: "unknown-chat-user",
            record: audited("slack:UNOBODY", "chatops/slack"), text: "your slack user UNOBODY is not linked"
        ) { w in try w.slack(w.slash("UNOBODY", "plan run ship")) },
        Reply(
            name: "slack: no deploy grant on the plan's environments", status: 403, type: "forbidden",
            record: audited("dave", "plan/ship"), text: "no grant allows you to deploy app/live"
        ) { w in try w.slack(w.slash("UDAVE", "plan run ship")) },
        Reply(
            name: "teams: an input the plan does not have", status: 422, type: "invalid-field",
            record: audited("alice", "plan/ship"), text: "/inputs/colour: plan ship has no input colour"
        ) { w in
            let body = RouteWorld.teamsActivity("aad-alice", "<at>draven</at> plan run ship colour=red")
            return try w.teams(body, authorization: RouteWorld.teamsMAC(body))
        },
        Reply(
            name: "mattermost: an unknown plan", status: 404, type: "not-found",
            record: audited("alice", "plan/nope"), text: "no plan nope"
        ) { w in try w.mattermost("mm-alice", "plan run nope") },
        Reply(
            name: "slack: no plan named", status: 422, type: "invalid-field", record: audited("alice", "chatops/slack"),
            text: ChatCommand.planUsage
        ) { w in try w.slack(w.slash("UALICE", "plan ship")) },
        Reply(
            name: "slack: an input without a key", status: 422, type: "invalid-field",
            record: audited("alice", "plan/ship"), text: "inputs are key=value"
        ) { w in try w.slack(w.slash("UALICE", "plan run ship =main")) },
    ]

    @Test(arguments: replies) func refusalsAreRepliesAndRecords(_ c: Reply) throws {
        try ChatOpsRefusalTests.expectReply(c, in: try Self.world())
    }

    /// What a chat run writes is what the API's run writes — the run, its step's job, the lock, the
    /// dispatch and the audit records — but for two things: its audit records say `via` the
    /// platform, and `deliveries` remembers the request (so a copy of it starts nothing).
    @Test func aChatRunIsTheAPIsRun() throws {
        let api = try Self.world()
        let chat = try Self.world()
        let a = try api.h.call(
            PlanAPI.self, "POST", "/api/v1/plans/ship/runs",
            json: ["inputs": ["ref": "release/1"], "reason": "fix the cart"], token: "alice")
        let c = try chat.slack(chat.slash("UALICE", "plan run ship ref=release/1 -- fix the cart"))
        #expect(a.status == 201 && c.status == 200, "\(a.body) \(c.body)")
        let run = try #require(a.json?["run_id"]?.intValue)
        #expect(
            c.json?["text"]?.stringValue == "draven: alice started run \(run) of plan ship v1 — running live")
        #expect(c.json?["response_type"]?.stringValue == "in_channel")
        #expect(a.outbox == c.outbox && !c.outbox.isEmpty)
        for table in ["plan_runs", "plan_steps", "jobs", "job_events", "locks", "outbox"] {
            #expect(c.after[table] == a.after[table], "\(table)")
        }
        let apiAudit = a.after.changes(since: a.before)["audit"]?.new ?? []
        let chatAudit = c.after.changes(since: c.before)["audit"]?.new ?? []
        #expect(apiAudit.count == chatAudit.count && !apiAudit.isEmpty)
        let columns = a.after["audit"].columns
        for (mine, theirs) in zip(chatAudit, apiAudit) {
            var record = Dictionary(uniqueKeysWithValues: zip(columns, mine))
            var expected = Dictionary(uniqueKeysWithValues: zip(columns, theirs))
            var detail = try #require(try JSON.parse(record["detail"]?.text ?? "").objectValue)
            #expect(detail["via"] == "slack")
            detail["via"] = nil
            record["detail"] = .text(JSON.object(detail).serialized())
            for key in ["hash", "prev_hash"] {
                record[key] = nil
                expected[key] = nil
            }
            #expect(record == expected)
        }
        let remembered = c.after.changes(since: c.before)["deliveries"]?.new ?? []
        #expect(remembered.count == 1)
        let row = Dictionary(uniqueKeysWithValues: zip(c.after["deliveries"].columns, remembered.first ?? []))
        #expect(row["source"] == .text("slack") && row["event"] == .text("plan_run"))
    }

    /// The same signed Slack request twice, and the same Mattermost command twice: one run each.
    @Test func aResentRequestStartsNothing() throws {
        let w = try Self.world()
        let body = w.slash("UALICE", "plan run ship")
        #expect(try w.slack(body).json?["text"]?.stringValue?.contains("started run") == true)
        try w.slack(body).expectRefused(401, "bad-signature", .counted)
        let first = try ChatDeployTests.mattermost(w, "mm-alice", "plan run ship", trigger: "trig-1")
        #expect(first.json?["text"]?.stringValue?.contains("started run") == true, "\(first.body)")
        let again = try ChatDeployTests.mattermost(w, "mm-alice", "plan run ship", trigger: "trig-1")
        again.expectRefused(401, "bad-signature", .audited(actor: "alice", subject: "plan/ship"))
        #expect(try w.h.store.count("plan_runs", "1 = 1") == 2)
    }
}
