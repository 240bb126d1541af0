@testable import DravenCore
@testable import DravenFunctions

/// A store with every route configured (the e2e suites' draven.test.toml and draven.attacks.toml in
/// one) and jobs in the states the refusal tables need, all made through the functions themselves:
/// `busy` dispatching in a `lock = "reject"` environment, `gated` (alice's) and `carols` awaiting
/// approval, `done` cancelled, and in `hist` two succeeded releases and a dispatching `holder`.
final class RouteWorld {
    let h: Harness
    var busy: Int64 = 0, busyToken: Int64 = 0
    var gated: Int64 = 0, carols: Int64 = 0, done: Int64 = 0, doneToken: Int64 = 0
    var holder: Int64 = 0, holderToken: Int64 = 0

    static let secrets = [
        "gh-token": "ghp_unitGH", "gh-hook": "unitGHhook", "gl-token": "glpat-unit", "gl-hook": "unitGLhook",
        "bb-token": "bbat-unit", "bb-hook": "unitBBhook", "runner": "unitRUNNER", "slack-signing": "unitSLACKsign",
        "slack-bot": "xoxb-unit", "teams-token": teamsToken, "mm-token": "unitMMtoken",
    ]
    /// Teams shows its security token base64-encoded; the HMAC key is the decoded bytes.
    static let teamsToken = "dW5pdFRFQU1Ta2V5LTAxMjM0NTY3ODlhYmNkZWY="
    static let teamsKey = Array("unitTEAMSkey-0123456789abcdef".utf8)

    static let config = """
        {
          "api": {"token_header": "X-Token-XPipe"},
          "chatops": {"slack": {"signing_secret": "slack-signing", "bot_token_secret": "slack-bot"},
                      "teams": {"security_token_secret": "teams-token"}, "mattermost": {"token_secret": "mm-token"}},
          "people": {
            "alice": {"chat": {"slack": "UALICE", "teams": "aad-alice", "mattermost": "mm-alice"}},
            "bob": {"chat": {"slack": "UBOB", "teams": "aad-bob", "mattermost": "mm-bob"}},
            "carol": {"chat": {"slack": "UCAROL", "mattermost": "mm-carol"}},
            "dave": {"chat": {"slack": "UDAVE"}}
          },
          "groups": {"leads": ["alice", "bob"], "developers": ["carol"]},
          "projects": {
            "app": {
              "integration": {"provider": "github", "repo": "acme/app", "method": "workflow_dispatch",
                              "token_secret": "gh-token", "webhook_secret": "gh-hook", "runner_secret": "runner",
                              "pipelines": {"*": "deploy.yml"}},
              "notify": {"slack_channel": "C0DEPLOYS"},
              "environments": {
                "busy": {"refs": ["branch:*"], "lock": "reject"},
                "gated": {"refs": ["branch:*"], "approvals": 2, "approver_groups": ["leads"]},
                "live": {"refs": ["branch:*", "tag:v*"]},
                "hist": {"refs": ["tag:v*"], "lock": "reject"},
                "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"]},
                "staging": {"refs": ["branch:main", "branch:release/*", "tag:v*"], "lock": "reject"},
                "demo": {"refs": ["branch:develop"], "lock": "queue"}
              }
            },
            "gl": {
              "integration": {"provider": "gitlab", "repo": "acme/gl", "method": "pipeline", "token_secret": "gl-token",
                              "webhook_secret": "gl-hook", "runner_secret": "runner"},
              "environments": {"e0": {"refs": ["branch:*"]}}
            },
            "bb": {
              "integration": {"provider": "bitbucket", "repo": "acme/bb", "method": "custom_pipeline",
                              "token_secret": "bb-token", "webhook_secret": "bb-hook", "runner_secret": "runner",
                              "pipelines": {"*": "deploy"}},
              "environments": {"e0": {"refs": ["branch:*"]}}
            }
          },
          "grants": [
            {"group": "developers", "project": "app", "environments": ["gated", "demo", "staging"],
             "actions": ["deploy", "read"]},
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read"]},
            {"person": "alice", "project": "*", "actions": ["rollback", "metrics"]},
            {"person": "dave", "project": "app", "actions": ["approve"]}
          ]
        }
        """

    /// Built once, then copied for each test (a copy takes a few milliseconds, building ten times that).
    nonisolated(unsafe) private static let template = Result { try RouteWorld(building: ()) }

    /// A world of its own, a copy of the one built for all.
    init() throws {
        let t = try Self.template.get()
        h = try Harness(copying: t.h)
        (busy, busyToken, gated, carols, done, doneToken) = (
            t.busy, t.busyToken, t.gated, t.carols, t.done, t.doneToken
        )
        (holder, holderToken) = (t.holder, t.holderToken)
    }

    private init(building: ()) throws {
        h = try Harness(config: Self.config, people: ["alice", "bob", "carol", "dave"], secrets: Self.secrets)
        h.snapshots = false
        defer { h.snapshots = true }
        (busy, busyToken) = try deploy("alice", "busy", "main", expect: "dispatching")
        (gated, _) = try deploy("alice", "gated", "main", expect: "awaiting_approval")
        (carols, _) = try deploy("carol", "gated", "feature", expect: "awaiting_approval")
        (done, doneToken) = try deploy("alice", "live", "refs/heads/main", expect: "dispatching")
        try expect(try h.call(Rollback.self, "POST", "/api/v1/jobs/\(done)/cancel", json: [:], token: "alice"), 200)
        for (tag, release) in [("v1.0.0", "r1"), ("v1.1.0", "r2")] {
            let (job, token) = try deploy("alice", "hist", tag, expect: "dispatching")
            let result = try runner([
                "job_id": .int(job), "fencing_token": .int(token), "result": "succeeded",
                "release_id": .string(release),
            ])
            try expect(result, 200)
        }
        (holder, holderToken) = try deploy("alice", "hist", "v1.2.0", expect: "dispatching")
        try h.store.checkpoint()
    }

    struct SetUpFailed: Error, CustomStringConvertible { var description: String }

    func expect(_ x: Exchange, _ status: Int) throws {
        guard x.status == status else { throw SetUpFailed(description: "\(x.method) \(x.path): \(x.status) \(x.body)") }
    }

    /// A deploy through the trigger: its job id and fencing token (0 while it holds no lock).
    func deploy(_ who: String, _ env: String, _ ref: String, expect state: String) throws -> (Int64, Int64) {
        let x = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": "app", "environment": .string(env), "ref": .string(ref)], token: who)
        try expect(x, 201)
        guard x.json?["state"]?.stringValue == state, let id = x.json?["id"]?.intValue else {
            throw SetUpFailed(description: "deploy to \(env): \(x.body)")
        }
        return (id, x.json?["fencing_token"]?.intValue ?? 0)
    }

    /// `POST /hooks/runner` with `body` signed by the runner secret (or `secret`) at `timestamp`.
    func runner(_ body: JSON, secret: String = RouteWorld.secrets["runner"]!, at timestamp: Int64? = nil) throws
        -> Exchange
    {
        try signed(WebhookReceive.self, "/hooks/runner", body.serializedBytes(), secret: secret, at: timestamp)
    }

    func signed<F: Function>(
        _ function: F.Type, _ target: String, _ body: [UInt8],
        secret: String = RouteWorld.secrets["runner"]!, at timestamp: Int64? = nil,
        contentType: String = "application/json"
    ) throws -> Exchange {
        try h.call(
            function, "POST", target, body: body, contentType: contentType,
            headers: Harness.runnerHeaders(body, secret: secret, at: timestamp ?? h.now))
    }

    func heartbeat(
        _ job: Int64, _ body: JSON, secret: String = RouteWorld.secrets["runner"]!,
        at timestamp: Int64? = nil
    ) throws -> Exchange {
        try signed(
            Heartbeat.self, "/api/v1/jobs/\(job)/heartbeat", body.serializedBytes(), secret: secret, at: timestamp)
    }

    // -- chat platforms, signed as each platform signs ------------------------------------------

    static func form(_ items: [(String, String)]) -> [UInt8] {
        Array(items.map { "\($0.0)=\(percentEncoded($0.1))" }.joined(separator: "&").utf8)
    }

    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(Unicode.Scalar(b))
            if c.isLetter && b < 0x80 || c.isNumber && b < 0x80 || "-_.~".contains(c) {
                out.append(c)
            } else {
                out += "%" + Hex.encode([b]).uppercased()
            }
        }
        return out
    }

    func slack(
        _ body: [UInt8], secret: String = RouteWorld.secrets["slack-signing"]!, at timestamp: Int64? = nil,
        contentType: String = "application/x-www-form-urlencoded"
    ) throws -> Exchange {
        let ts = timestamp ?? h.now
        let mac = Sodium.hmacSHA256(
            key: SecretBytes(copying: Array(secret.utf8), label: "slack"),
            message: Array("v0:\(ts):".utf8) + body)
        return try h.call(
            Approve.self, "POST", "/chatops/slack", body: body, contentType: contentType,
            headers: ["X-Slack-Request-Timestamp": String(ts), "X-Slack-Signature": "v0=" + Hex.encode(mac)])
    }

    func slash(_ user: String, _ text: String) -> [UInt8] {
        Self.form([("command", "/draven"), ("user_id", user), ("text", text)])
    }

    static func teamsActivity(_ user: String, _ text: String) -> [UInt8] {
        let activity: JSON = [
            "type": "message", "id": "1", "channelId": "msteams",
            "from": ["id": .string("29:\(user)"), "aadObjectId": .string(user)], "text": .string(text),
        ]
        return activity.serializedBytes()
    }

    static func teamsMAC(_ body: [UInt8], key: [UInt8] = teamsKey) -> String {
        "HMAC " + SecretsCrypto.base64(Sodium.hmacSHA256(key: SecretBytes(copying: key, label: "teams"), message: body))
    }

    func teams(_ body: [UInt8], authorization: String?) throws -> Exchange {
        try h.call(
            Approve.self, "POST", "/chatops/teams", body: body, contentType: "application/json",
            headers: authorization.map { ["Authorization": $0] } ?? [:])
    }

    func mattermost(_ user: String, _ text: String, token: String = RouteWorld.secrets["mm-token"]!) throws -> Exchange
    {
        try h.call(
            Approve.self, "POST", "/chatops/mattermost", body: Self.form([("user_id", user), ("text", text)]),
            contentType: "application/x-www-form-urlencoded", headers: ["Authorization": "Token " + token])
    }

    // -- provider webhooks ------------------------------------------------------------------------

    func github(
        _ body: [UInt8], event: String = "workflow_run", project: String? = "app",
        secret: String = RouteWorld.secrets["gh-hook"]!, signature: String? = nil,
        contentType: String = "application/json"
    ) throws -> Exchange {
        let mac = Sodium.hmacSHA256(key: SecretBytes(copying: Array(secret.utf8), label: "gh"), message: body)
        let target = "/hooks/github" + (project.map { "?project=\($0)" } ?? "")
        return try h.call(
            WebhookReceive.self, "POST", target, body: body, contentType: contentType,
            headers: [
                "X-GitHub-Event": event, "X-GitHub-Delivery": "d-1",
                "X-Hub-Signature-256": signature ?? "sha256=" + Hex.encode(mac),
            ])
    }
}
