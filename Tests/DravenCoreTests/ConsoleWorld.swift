@testable import DravenCore
@testable import DravenFunctions

/// A store for the console's read models, moved only through the functions and the deliverer:
/// two projects (`app`, `vault`), leads who approve everywhere, a developer who deploys `app`,
/// `dave` who holds `approve` on `app` but no `read`, and `olga` who reads only `vault`.
final class ConsoleWorld {
    let h: Harness
    static let runnerSecret = "unitRUNNER"

    static let config = """
        {
          "people": {"alice": {}, "bob": {}, "erin": {}, "carol": {}, "dave": {}, "olga": {}},
          "groups": {"leads": ["alice", "bob", "erin"], "developers": ["carol"], "ops": ["olga"]},
          "projects": {
            "app": {
              "integration": {"provider": "github", "repo": "acme/app", "method": "workflow_dispatch",
                              "token_secret": "gh-token", "webhook_secret": "gh-hook", "runner_secret": "runner",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {
                "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"]},
                "strict": {"refs": ["tag:v*"], "approvals": 1, "approver_groups": ["leads"], "lock": "reject"},
                "demo": {"refs": ["branch:*"], "lock": "queue", "on_failure": ["diagnostic", "rollback"]}
              }
            },
            "vault": {
              "integration": {"provider": "github", "repo": "acme/vault", "method": "workflow_dispatch",
                              "token_secret": "gh-token", "webhook_secret": "gh-hook", "runner_secret": "runner",
                              "pipelines": {"*": "deploy.yml"}},
              "environments": {"prod": {"refs": ["tag:v*"], "approvals": 1, "approver_groups": ["leads"]}}
            }
          },
          "grants": [
            {"group": "developers", "project": "app", "actions": ["deploy", "read"]},
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read", "rollback"]},
            {"person": "dave", "project": "app", "actions": ["approve"]},
            {"group": "ops", "project": "vault", "actions": ["read"]}
          ]
        }
        """

    init() throws {
        h = try Harness(
            config: Self.config, people: ["alice", "bob", "erin", "carol", "dave", "olga"],
            secrets: ["gh-token": "ghp_unit", "gh-hook": "unitGHhook", "runner": Self.runnerSecret])
        h.snapshots = false
    }

    var db: Database { h.store.db }

    struct Failed: Error, CustomStringConvertible { var description: String }

    func viewer(_ handle: String) throws -> Principal {
        Principal(personID: try h.store.personID(handle), handle: handle, tokenID: 0)
    }

    /// A deploy through the trigger; returns its job id.
    @discardableResult
    func deploy(_ who: String, _ project: String = "app", _ env: String, _ ref: String, expect state: String) throws
        -> Int64
    {
        let x = try h.call(
            Trigger.self, "POST", "/api/v1/deploys",
            json: ["project": .string(project), "environment": .string(env), "ref": .string(ref)], token: who)
        guard x.status == 201, x.json?["state"]?.stringValue == state, let id = x.json?["id"]?.intValue else {
            throw Failed(description: "deploy \(project)/\(env) \(ref) by \(who): \(x.status) \(x.body)")
        }
        return id
    }

    /// A vote through `POST /api/v1/jobs/{id}/approvals`.
    func vote(_ who: String, _ job: Int64, _ decision: String = "approve", comment: String = "") throws -> Exchange {
        try h.call(
            Approve.self, "POST", "/api/v1/jobs/\(job)/approvals",
            json: ["decision": .string(decision), "comment": .string(comment)], token: who)
    }

    /// A vote from Slack (the chat path's own call into `Approvals.vote`).
    func slackVote(_ who: String, _ job: Int64) throws {
        let voter = Approvals.Voter(
            personID: try h.store.personID(who), handle: who, via: "slack", chatUser: "U" + who.uppercased(),
            remote: "192.0.2.9")
        _ = try db.immediate { tx in
            try Approvals.vote(tx, job: job, voter: voter, decision: .approve, comment: "ship it", now: h.now)
        }
    }

    func token(_ job: Int64) throws -> Int64 { try Job.require(db, id: job).fencingToken ?? 0 }

    func signed<F: Function>(_ function: F.Type, _ target: String, _ body: JSON) throws -> Exchange {
        let bytes = body.serializedBytes()
        return try h.call(
            function, "POST", target, body: bytes, contentType: "application/json",
            headers: Harness.runnerHeaders(bytes, secret: Self.runnerSecret, at: h.now))
    }

    func heartbeat(_ job: Int64, _ progress: JSON) throws -> Exchange {
        try signed(
            Heartbeat.self, "/api/v1/jobs/\(job)/heartbeat",
            ["fencing_token": .int(try token(job)), "progress": progress])
    }

    /// The runner's final report for `job`.
    @discardableResult
    func finish(_ job: Int64, _ result: String, log: String? = nil, artifacts: [String] = [], release: String? = nil)
        throws -> Exchange
    {
        var body: JSONObject = ["job_id": .int(job), "fencing_token": .int(try token(job)), "result": .string(result)]
        if let log { body["log_url"] = .string(log) }
        if !artifacts.isEmpty { body["artifact_urls"] = .array(artifacts.map(JSON.string)) }
        if let release { body["release_id"] = .string(release) }
        let x = try signed(WebhookReceive.self, "/hooks/runner", .object(body))
        guard x.status == 200 else { throw Failed(description: "runner for \(job): \(x.status) \(x.body)") }
        return x
    }

    /// Delivers what is due at `now` with `answers` (then the clock is `now`).
    func deliver(_ answers: [Result<OutboundResponse, TransportError>], at now: Int64) throws {
        h.store.now = now
        var delivery = Delivery(db: db, paths: h.store.paths, transport: ScriptedTransport(answers))
        try delivery.deliver(Delivery.due(db, now: now), now: { now })
    }

    /// A deploy of `ref` to `app/demo` that succeeds (through its runner): the new live release.
    @discardableResult
    func release(_ ref: String, by who: String = "alice", as name: String) throws -> Int64 {
        let job = try deploy(who, "app", "demo", ref, expect: "dispatching")
        try finish(job, "succeeded", release: name)
        return job
    }
}
