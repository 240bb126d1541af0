import Testing

@testable import DravenCore
@testable import DravenFunctions

/// One refused request of a route's table: how to make it in a fresh `RouteWorld`, the answer it
/// gets, and the one record the refusal writes (the rest of the store must not change).
struct Refused: Sendable, CustomTestStringConvertible {
    var name: String
    var status: Int
    var type: String
    var record: @Sendable (RouteWorld) -> RefusalRecord
    var send: @Sendable (RouteWorld) throws -> Exchange

    init(
        _ name: String, _ status: Int, _ type: String, _ record: @escaping @Sendable (RouteWorld) -> RefusalRecord,
        _ send: @escaping @Sendable (RouteWorld) throws -> Exchange
    ) {
        self.name = name
        self.status = status
        self.type = type
        self.record = record
        self.send = send
    }

    var testDescription: String { name }

    func check() throws {
        let world = try RouteWorld()
        try send(world).expectRefused(status, type, record(world))
    }
}

/// A refusal of a caller who proved nothing: counted, not chained.
let counted: @Sendable (RouteWorld) -> RefusalRecord = { _ in .counted }

/// A refusal of `who`, about `subject`: one chained audit record.
func audited(_ who: String, _ subject: String = "") -> @Sendable (RouteWorld) -> RefusalRecord {
    { _ in .audited(actor: who, subject: subject) }
}

func audited(_ who: String, job: @escaping @Sendable (RouteWorld) -> Int64) -> @Sendable (RouteWorld) -> RefusalRecord {
    { w in .audited(actor: who, subject: "job/\(job(w))") }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

// MARK: - trigger (Tests/e2e/test_trigger.py REFUSALS, test_hostile.py, test_hooks_hardening.py)

@Suite struct TriggerRefusalTests {
    static let demo: JSON = ["project": "app", "environment": "demo", "ref": "develop"]

    static func deploy(_ body: JSON, token: String? = "alice") -> @Sendable (RouteWorld) throws -> Exchange {
        { w in try w.h.call(Trigger.self, "POST", "/api/v1/deploys", json: body, token: token) }
    }

    static func raw(
        _ body: String, contentType: String? = "application/json",
        token: String? = "alice"
    ) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in
            try w.h.call(
                Trigger.self, "POST", "/api/v1/deploys", body: bytes(body), contentType: contentType, token: token)
        }
    }

    static func on(_ env: String, _ ref: String, _ extra: JSONObject = [:]) -> JSON {
        var body: JSONObject = ["project": "app", "environment": .string(env), "ref": .string(ref)]
        for (k, v) in extra.entries { body[k] = v }
        return .object(body)
    }

    static let cases: [Refused] = [
        Refused("no token", 401, "unauthenticated", counted, deploy(demo, token: nil)),
        Refused(
            "bad token", 401, "unauthenticated", counted,
            deploy(demo, token: "drv_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        Refused("garbage token", 401, "unauthenticated", counted, deploy(demo, token: "hunter2")),
        Refused("revoked token", 401, "unauthenticated", counted) { w in
            let key = try Tokens.loadKey(w.h.store.paths)
            let token = try w.h.store.db.immediate { tx in
                let made = try Tokens.create(tx, person: "carol", name: "old", key: key, now: w.h.now)
                _ = try Tokens.revoke(tx, publicID: made.publicID, actor: "test", now: w.h.now)
                return made.plaintext
            }
            return try w.h.call(Trigger.self, "POST", "/api/v1/deploys", json: demo, token: token)
        },
        Refused("garbage token in the configured header", 401, "unauthenticated", counted) { w in
            try w.h.call(Trigger.self, "POST", "/api/v1/deploys", json: demo, headers: ["X-Token-XPipe": "hunter2"])
        },
        Refused("no grant", 403, "forbidden", audited("dave", "app/demo"), deploy(demo, token: "dave")),
        Refused(
            "grant elsewhere", 403, "forbidden", audited("carol", "app/prod"),
            deploy(on("prod", "v1.0.0"), token: "carol")),
        Refused(
            "branch on tags-only env", 403, "policy-denied", audited("alice", "app/prod"),
            deploy(on("prod", "refs/heads/main"))),
        Refused(
            "tag not matching", 403, "policy-denied", audited("alice", "app/prod"),
            deploy(on("prod", "refs/tags/release-1"))),
        Refused("wrong branch", 403, "policy-denied", audited("alice", "app/demo"), deploy(on("demo", "main"))),
        Refused(
            "ambiguous short ref", 422, "invalid-field", audited("alice", "app/staging"),
            deploy(on("staging", "main"))),
        Refused(
            "busy, policy reject", 409, "environment-busy", audited("alice", "app/busy"), deploy(on("busy", "main"))),
        Refused("malformed JSON", 400, "malformed-request", audited("alice"), raw(#"{"project": "app","#)),
        Refused(
            "duplicate keys", 400, "malformed-request", audited("alice"),
            raw(#"{"project":"app","project":"x","environment":"demo","ref":"develop"}"#)),
        Refused("not an object", 400, "malformed-request", audited("alice"), raw(#"["app"]"#)),
        Refused("empty body", 400, "malformed-request", audited("alice"), raw("")),
        Refused(
            "wrong content type", 415, "unsupported-media-type", audited("alice"),
            raw(#"{"project":"app","environment":"demo","ref":"develop"}"#, contentType: "text/plain")),
        Refused(
            "form content type", 415, "unsupported-media-type", audited("alice"),
            raw("project=app", contentType: "application/x-www-form-urlencoded")),
        Refused(
            "body too large for trigger", 413, "body-too-large", counted,
            raw(
                #"{"project":"app","environment":"demo","ref":"develop","reason":""#
                    + String(repeating: "x", count: 100_000) + #""}"#)),
        Refused(
            "unknown project", 404, "not-found", audited("alice", "nope/demo"),
            deploy(["project": "nope", "environment": "demo", "ref": "develop"])),
        Refused("unknown environment", 404, "not-found", audited("alice", "app/nope"), deploy(on("nope", "develop"))),
        Refused(
            "missing ref", 422, "invalid-field", audited("alice"), deploy(["project": "app", "environment": "demo"])),
        Refused(
            "ref not a string", 422, "invalid-field", audited("alice"),
            deploy(["project": "app", "environment": "demo", "ref": 7])),
        Refused(
            "unknown field", 422, "invalid-field", audited("alice"), deploy(on("demo", "develop", ["force": true]))),
        Refused("bad sha", 422, "invalid-field", audited("alice"), deploy(on("demo", "develop", ["sha": "abc"]))),
        Refused(
            "option-like ref", 422, "invalid-field", audited("alice", "app/demo"),
            deploy(on("demo", "refs/heads/-x", ["ref_kind": "branch"]))),
        Refused(
            "bad ref_kind", 422, "invalid-field", audited("alice", "app/demo"),
            deploy(on("demo", "develop", ["ref_kind": "commit"]))),
        Refused("an idempotency key that is not printable ASCII", 422, "invalid-field", audited("alice", "app/demo")) {
            w in
            try w.h.call(
                Trigger.self, "POST", "/api/v1/deploys", json: demo, token: "alice",
                headers: ["Idempotency-Key": "a b"])
        },
        Refused(
            "an idempotency key reused for another request", 422, "idempotency-key-reused",
            audited("alice", "app/demo")
        ) { w in
            let first = try w.h.call(
                Trigger.self, "POST", "/api/v1/deploys", json: demo, token: "alice",
                headers: ["Idempotency-Key": "k1"])
            try w.expect(first, 201)
            return try w.h.call(
                Trigger.self, "POST", "/api/v1/deploys", json: on("demo", "develop", ["reason": "other"]),
                token: "alice", headers: ["Idempotency-Key": "k1"])
        },
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Trigger.self, "GET", "/api/v1/deploys", token: "alice")
        },
        Refused("unknown route", 404, "not-found", counted) { w in try w.h.call(Trigger.self, "GET", "/api/v2/nothing")
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsRecord(_ c: Refused) throws { try c.check() }

    @Test func theRefusalsSayWhy() throws {
        let w = try RouteWorld()
        let ambiguous = try w.h.call(
            Trigger.self, "POST", "/api/v1/deploys", json: Self.on("staging", "main"), token: "alice")
        #expect(ambiguous.json?["pointer"]?.stringValue == "/ref")
        #expect(ambiguous.json?["detail"]?.stringValue?.contains("refs/heads/main") == true)
        let policy = try w.h.call(
            Trigger.self, "POST", "/api/v1/deploys", json: Self.on("demo", "main"), token: "alice")
        #expect(policy.json?["rule"]?.stringValue == "refs")
        let busy = try w.h.call(Trigger.self, "POST", "/api/v1/deploys", json: Self.on("busy", "main"), token: "alice")
        #expect(busy.json?["held_by"]?.intValue == w.busy)
        let anonymous = try w.h.call(Trigger.self, "POST", "/api/v1/deploys", json: Self.demo)
        #expect(anonymous.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        let method = try w.h.call(Trigger.self, "GET", "/api/v1/deploys", token: "alice")
        #expect(method.header("Allow") == "POST")
    }
}

// MARK: - approve: votes and their list (test_approve.py, test_edge.py)

@Suite struct ApproveRefusalTests {
    static func vote(
        _ who: String?, _ job: @escaping @Sendable (RouteWorld) -> Int64,
        _ body: JSON = ["decision": "approve"]
    ) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in try w.h.call(Approve.self, "POST", "/api/v1/jobs/\(job(w))/approvals", json: body, token: who) }
    }

    static func raw(_ body: String, contentType: String) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in
            try w.h.call(
                Approve.self, "POST", "/api/v1/jobs/\(w.carols)/approvals", body: bytes(body),
                contentType: contentType, token: "alice")
        }
    }

    static let carols: @Sendable (RouteWorld) -> Int64 = { $0.carols }
    static let gated: @Sendable (RouteWorld) -> Int64 = { $0.gated }

    static let cases: [Refused] = [
        Refused("no approve grant", 403, "forbidden", audited("carol", job: carols), vote("carol", carols)),
        Refused("in no approver group", 403, "policy-denied", audited("dave", job: carols), vote("dave", carols)),
        Refused("her own deploy", 403, "policy-denied", audited("alice", job: gated), vote("alice", gated)),
        Refused(
            "a job the caller cannot read", 404, "not-found", audited("carol", job: { $0.busy }),
            vote("carol", { $0.busy })),
        Refused(
            "decision maybe", 422, "invalid-field", audited("alice", job: carols),
            vote("alice", carols, ["decision": "maybe"])),
        Refused(
            "an extra field", 422, "invalid-field", audited("alice", job: carols),
            vote("alice", carols, ["decision": "approve", "extra": 1])),
        Refused(
            "a comment that is a number", 422, "invalid-field", audited("alice", job: carols),
            vote("alice", carols, ["decision": "approve", "comment": 5])),
        Refused(
            "not JSON", 400, "malformed-request", audited("alice", job: carols),
            raw("{not json", contentType: "application/json")),
        Refused(
            "duplicate keys", 400, "malformed-request", audited("alice", job: carols),
            raw(#"{"decision":"reject","decision":"approve"}"#, contentType: "application/json")),
        Refused(
            "a form body", 415, "unsupported-media-type", audited("alice", job: carols),
            raw("decision=approve", contentType: "application/x-www-form-urlencoded")),
        Refused("no token", 401, "unauthenticated", counted, vote(nil, carols)),
        Refused("unknown job", 404, "not-found", audited("alice", "job/999999"), vote("alice", { _ in 999_999 })),
        Refused("a vote on a rejected job", 409, "conflict", audited("bob", job: carols)) { w in
            try w.expect(try vote("alice", carols)(w), 201)
            try w.expect(try vote("alice", carols, ["decision": "reject"])(w), 201)
            return try vote("bob", carols)(w)
        },
        Refused("the list without a token", 401, "unauthenticated", counted) { w in
            try w.h.call(Approve.self, "GET", "/api/v1/jobs/\(w.carols)/approvals", token: "drv_nope_nope")
        },
        Refused("the list of a job the caller cannot read", 404, "not-found", audited("dave", job: { $0.busy })) { w in
            try w.h.call(Approve.self, "GET", "/api/v1/jobs/\(w.busy)/approvals", token: "dave")
        },
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Approve.self, "PUT", "/api/v1/jobs/\(w.carols)/approvals", token: "alice")
        },
        Refused("a non-numeric id", 404, "not-found", audited("alice")) { w in
            try w.h.call(
                Approve.self, "POST", "/api/v1/jobs/abc/approvals", json: ["decision": "approve"], token: "alice")
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsRecord(_ c: Refused) throws { try c.check() }

    @Test func theRuleIsNamed() throws {
        let w = try RouteWorld()
        #expect(try Self.vote("dave", Self.carols)(w).json?["rule"]?.stringValue == "approver_groups")
        #expect(try Self.vote("alice", Self.gated)(w).json?["rule"]?.stringValue == "self_approval")
    }
}

// MARK: - chat-ops: Slack, Teams, Mattermost (test_approve.py, test_hooks_hardening.py, test_hostile.py)

@Suite struct ChatOpsRefusalTests {
    static let slash: @Sendable (RouteWorld) -> [UInt8] = { w in w.slash("UALICE", "approve \(w.carols)") }

    static let cases: [Refused] = [
        Refused("slack: wrong secret", 401, "bad-signature", counted) { w in try w.slack(slash(w), secret: "nope") },
        Refused("slack: old timestamp", 401, "bad-signature", counted) { w in try w.slack(slash(w), at: w.h.now - 360)
        },
        Refused("slack: future timestamp", 401, "bad-signature", counted) { w in
            try w.slack(slash(w), at: w.h.now + 360)
        },
        Refused("slack: no signature", 401, "bad-signature", counted) { w in
            try w.h.call(
                Approve.self, "POST", "/chatops/slack", body: slash(w),
                contentType: "application/x-www-form-urlencoded",
                headers: ["X-Slack-Request-Timestamp": String(w.h.now)])
        },
        Refused("slack: no timestamp", 401, "bad-signature", counted) { w in
            try w.h.call(
                Approve.self, "POST", "/chatops/slack", body: slash(w),
                contentType: "application/x-www-form-urlencoded", headers: ["X-Slack-Signature": "v0=00"])
        },
        Refused("slack: tampered body", 401, "bad-signature", counted) { w in
            let signed = try w.slack(w.slash("UALICE", "status \(w.carols)"))
            try w.expect(signed, 200)
            let mac = Sodium.hmacSHA256(
                key: SecretBytes(copying: bytes(RouteWorld.secrets["slack-signing"]!), label: "s"),
                message: bytes("v0:\(w.h.now):") + w.slash("UALICE", "status \(w.carols)"))
            return try w.h.call(
                Approve.self, "POST", "/chatops/slack", body: slash(w),
                contentType: "application/x-www-form-urlencoded",
                headers: [
                    "X-Slack-Request-Timestamp": String(w.h.now),
                    "X-Slack-Signature": "v0=" + Hex.encode(mac),
                ])
        },
        Refused("slack: a replay", 401, "bad-signature", counted) { w in
            try w.expect(try w.slack(slash(w)), 200)
            return try w.slack(slash(w))
        },
        Refused("slack: signed, but not a form", 415, "unsupported-media-type", counted) { w in
            try w.slack(bytes(#"{"user_id":"UALICE"}"#), contentType: "application/json")
        },
        Refused("teams: no signature", 401, "bad-signature", counted) { w in
            try w.teams(RouteWorld.teamsActivity("aad-alice", "approve \(w.carols)"), authorization: nil)
        },
        Refused("teams: not an HMAC", 401, "bad-signature", counted) { w in
            try w.teams(RouteWorld.teamsActivity("aad-alice", "approve \(w.carols)"), authorization: "Bearer abc")
        },
        Refused("teams: another body's HMAC", 401, "bad-signature", counted) { w in
            try w.teams(
                RouteWorld.teamsActivity("aad-alice", "approve \(w.carols)"),
                authorization: RouteWorld.teamsMAC(bytes("other")))
        },
        Refused("teams: another key", 401, "bad-signature", counted) { w in
            let body = RouteWorld.teamsActivity("aad-alice", "approve \(w.carols)")
            return try w.teams(body, authorization: RouteWorld.teamsMAC(body, key: bytes("another key")))
        },
        Refused("teams: a replay", 401, "bad-signature", counted) { w in
            let body = RouteWorld.teamsActivity("aad-alice", "approve \(w.carols)")
            try w.expect(try w.teams(body, authorization: RouteWorld.teamsMAC(body)), 200)
            return try w.teams(body, authorization: RouteWorld.teamsMAC(body))
        },
        Refused("mattermost: wrong token", 401, "bad-signature", counted) { w in
            try w.mattermost("mm-alice", "approve \(w.carols)", token: "wrong")
        },
        Refused("mattermost: not a form", 415, "unsupported-media-type", counted) { w in
            try w.h.call(
                Approve.self, "POST", "/chatops/mattermost", body: bytes("{}"), contentType: "application/json",
                headers: ["Authorization": "Token " + RouteWorld.secrets["mm-token"]!])
        },
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Approve.self, "GET", "/chatops/slack")
        },
    ]

    @Test(arguments: cases) func unverifiedRequestsChangeNothingButTheirCount(_ c: Refused) throws { try c.check() }

    /// A verified request is answered 200 with a message for the chat; a refusal is that message,
    /// and its record is an API refusal's.
    struct Reply: Sendable, CustomTestStringConvertible {
        var name: String
        var status: Int
        var type: String
        var record: @Sendable (RouteWorld) -> RefusalRecord
        var text: String
        var send: @Sendable (RouteWorld) throws -> Exchange
        var testDescription: String { name }
    }

    static let replies: [Reply] = [
        Reply(
            name: "slack: an unlinked user", status: 403, type: "unknown-chat-user",
            record: audited("slack:UNOBODY", "chatops/slack"), text: "your slack user UNOBODY is not linked"
        ) { w in
            try w.slack(w.slash("UNOBODY", "approve \(w.carols)"))
        },
        Reply(
            name: "slack: not in an approver group", status: 403, type: "policy-denied",
            record: audited("dave", job: { $0.carols }), text: "dave is in none of them"
        ) { w in
            try w.slack(w.slash("UDAVE", "approve \(w.carols)"))
        },
        Reply(
            name: "slack: her own deploy", status: 403, type: "policy-denied",
            record: audited("alice", job: { $0.gated }), text: "does not allow approving your own deploy"
        ) { w in
            try w.slack(w.slash("UALICE", "approve \(w.gated)"))
        },
        Reply(
            name: "slack: an unknown job", status: 404, type: "not-found", record: audited("alice", "job/999999"),
            text: "no job 999999"
        ) { w in try w.slack(w.slash("UALICE", "approve 999999")) },
        Reply(
            name: "slack: a job named by a word", status: 422, type: "invalid-field",
            record: audited("alice", "chatops/slack"), text: "name the job by its number: approve 12"
        ) { w in
            try w.slack(w.slash("UALICE", "approve soon"))
        },
        Reply(
            name: "teams: an unlinked user", status: 403, type: "unknown-chat-user",
            record: audited("teams:aad-nobody", "chatops/teams"), text: "your teams user aad-nobody is not linked"
        ) { w in
            let body = RouteWorld.teamsActivity("aad-nobody", "<at>draven</at> approve \(w.carols)")
            return try w.teams(body, authorization: RouteWorld.teamsMAC(body))
        },
        Reply(
            name: "mattermost: an unlinked user", status: 403, type: "unknown-chat-user",
            record: audited("mattermost:mm-nobody", "chatops/mattermost"), text: "not linked"
        ) { w in
            try w.mattermost("mm-nobody", "approve \(w.carols)")
        },
        Reply(
            name: "mattermost: no approve grant", status: 403, type: "forbidden",
            record: audited("carol", job: { $0.carols }), text: "no grant allows you to approve"
        ) { w in
            try w.mattermost("mm-carol", "approve \(w.carols)")
        },
    ]

    @Test(arguments: replies) func refusalsOfVerifiedUsersAreRepliesAndRecords(_ c: Reply) throws {
        try Self.expectReply(c, in: try RouteWorld())
    }

    /// Expects `c`'s request in `w` to be answered 200 with the refusal as its text, recorded as an API refusal.
    static func expectReply(_ c: Reply, in w: RouteWorld) throws {
        let x = try c.send(w)
        #expect(x.status == 200, "\(x.body)")
        let text = x.json?["text"]?.stringValue ?? ""
        #expect(text.contains(c.text), "\(text)")
        #expect(text.hasPrefix("draven: "))
        x.expectRecorded(status: c.status, type: c.type, detail: String(text.dropFirst("draven: ".count)), c.record(w))
    }

    @Test func aCommandDravenDoesNotKnowIsUsageAndChangesNothing() throws {
        let w = try RouteWorld()
        let x = try w.slack(w.slash("UALICE", "launch everything"))
        #expect(x.status == 200 && x.json?["text"]?.stringValue == ChatCommand.usage)
        x.expectUnchanged()
    }

    /// A button's refusal reaches the clicker as an ephemeral message: that outbox row and the
    /// refusal's record are all it writes.
    @Test func aButtonsRefusalIsAnEphemeralMessage() throws {
        let w = try RouteWorld()
        let payload: JSON = [
            "type": "block_actions", "user": ["id": "UNOBODY"], "channel": ["id": "C0DEPLOYS"],
            "actions": [["action_id": "draven_reject", "value": .string(String(w.carols))]],
        ]
        let x = try w.slack(RouteWorld.form([("payload", payload.serialized())]))
        #expect(x.status == 200 && x.json == [:])
        #expect(x.outbox.count == 1)
        var withoutOutbox = x
        withoutOutbox.outbox = []
        withoutOutbox.after.tables["outbox"] = x.before["outbox"]
        let detail = Problem(DravenError.unknownChatUser(platform: "slack", userID: "UNOBODY")).detail
        withoutOutbox.expectRecorded(
            status: 403, type: "unknown-chat-user", detail: detail,
            .audited(actor: "slack:UNOBODY", subject: "chatops/slack"))
        let old = x.before["outbox"].rows
        let rows = x.after["outbox"].records
        #expect(Array(x.after["outbox"].rows.prefix(old.count)) == old)
        #expect(rows.count == old.count + 1)
        let row = try #require(rows.last)
        #expect(row["id"]?.int == x.outbox.first)
        #expect(row["kind"] == .text("notify") && row["job_id"] == .null && row["state"] == .text("pending"))
        let sent = try JSON.parse(row["payload"]?.text ?? "")
        #expect(
            sent == [
                "channel": .string(ApprovalMessages.channel), "action": "ephemeral", "slack_channel": "C0DEPLOYS",
                "user": "UNOBODY", "text": .string("draven: " + detail),
            ])
    }
}
