import Testing

@testable import DravenCore
@testable import DravenFunctions

// MARK: - heartbeat (test_heartbeat.py, test_hooks_hardening.py, test_hostile.py)

@Suite struct HeartbeatRefusalTests {
    static func beat(_ change: @escaping @Sendable (RouteWorld) -> JSON) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in try w.heartbeat(w.busy, change(w)) }
    }

    static func raw(_ body: String, contentType: String = "application/json")
        -> @Sendable (RouteWorld) throws -> Exchange
    {
        { w in try w.signed(Heartbeat.self, "/api/v1/jobs/\(w.busy)/heartbeat", bytes(body), contentType: contentType) }
    }

    static let cases: [Refused] = [
        Refused("bad signature", 401, "bad-signature", counted) { w in
            try w.heartbeat(w.busy, ["fencing_token": .int(w.busyToken)], secret: "not-the-runner-secret")
        },
        Refused("old timestamp", 401, "bad-signature", counted) { w in
            try w.heartbeat(w.busy, ["fencing_token": .int(w.busyToken)], at: w.h.now - 3600)
        },
        Refused("no signature", 401, "bad-signature", counted) { w in
            try w.h.call(Heartbeat.self, "POST", "/api/v1/jobs/\(w.busy)/heartbeat", json: ["fencing_token": 1])
        },
        Refused("unknown job", 401, "bad-signature", counted) { w in
            try w.heartbeat(999_999, ["fencing_token": .int(w.busyToken)])
        },
        Refused("stale token", 409, "stale-fencing-token", counted, beat { ["fencing_token": .int($0.busyToken + 1)] }),
        Refused("token as a string", 422, "invalid-field", counted, beat { _ in ["fencing_token": "1"] }),
        Refused(
            "unknown field", 422, "invalid-field", counted, beat { _ in ["fencing_token": 1, "state": "succeeded"] }),
        Refused(
            "bad percent", 422, "invalid-field", counted,
            beat { ["fencing_token": .int($0.busyToken), "progress": ["percent": 140]] }),
        Refused(
            "unknown progress field", 422, "invalid-field", counted,
            beat { ["fencing_token": .int($0.busyToken), "progress": ["eta": 3]] }),
        Refused("not JSON", 400, "malformed-request", counted, raw("fencing_token=1")),
        Refused("duplicate keys", 400, "malformed-request", counted, raw(#"{"fencing_token": 1, "fencing_token": 1}"#)),
        Refused(
            "form body", 415, "unsupported-media-type", counted,
            raw("fencing_token=1", contentType: "application/x-www-form-urlencoded")),
        Refused("too large", 413, "body-too-large", counted, raw("{" + String(repeating: " ", count: 5000) + "}")),
        Refused("a job that has ended", 409, "conflict", counted) { w in
            try w.heartbeat(w.done, ["fencing_token": .int(w.doneToken)])
        },
        Refused("a lease that ran out", 409, "conflict", counted) { w in
            w.h.store.now += 601  // the default lease is ten minutes; the sweep has not ended the job yet
            return try w.heartbeat(w.busy, ["fencing_token": .int(w.busyToken)])
        },
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Heartbeat.self, "GET", "/api/v1/jobs/\(w.busy)/heartbeat")
        },
        Refused("a non-numeric id", 404, "not-found", counted) { w in
            try w.h.call(Heartbeat.self, "POST", "/api/v1/jobs/abc/heartbeat", json: ["fencing_token": 1])
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsCount(_ c: Refused) throws { try c.check() }

    @Test func theLapsedLeaseIsNamed() throws {
        let w = try RouteWorld()
        w.h.store.now += 601
        let x = try w.heartbeat(w.busy, ["fencing_token": .int(w.busyToken)])
        #expect(x.json?["detail"]?.stringValue?.contains("ran out") == true)
        #expect(try w.heartbeat(w.busy, ["fencing_token": .int(w.busyToken)], at: w.h.now).status == 409)
    }
}

// MARK: - webhook-receive: the runner's callback and the providers' hooks (test_webhooks.py, test_hostile.py)

@Suite struct WebhookRefusalTests {
    static func result(_ change: @escaping @Sendable (RouteWorld) -> JSONObject = { _ in [:] })
        -> @Sendable (RouteWorld) -> JSON
    {
        { w in
            var body: JSONObject = [
                "job_id": .int(w.holder), "fencing_token": .int(w.holderToken), "result": "succeeded",
                "log_url": "https://ci.example/logs/77", "artifact_urls": ["https://ci.example/a.tgz"],
                "release_id": "rel-42",
            ]
            for (k, v) in change(w).entries { body[k] = v }
            return .object(body)
        }
    }

    static let workflowRun: JSON = [
        "action": "completed",
        "workflow_run": [
            "id": 1, "status": "completed",
            "conclusion": "success",
        ], "repository": ["full_name": "acme/app"],
    ]

    static let cases: [Refused] = [
        Refused("runner: stale token", 409, "stale-fencing-token", counted) { w in
            try w.runner(result { ["fencing_token": .int($0.holderToken + 100)] }(w))
        },
        Refused("runner: bad signature", 401, "bad-signature", counted) { w in try w.runner(result()(w), secret: "nope")
        },
        Refused("runner: old timestamp", 401, "bad-signature", counted) { w in
            try w.runner(result()(w), at: w.h.now - 301)
        },
        Refused("runner: unknown job", 401, "bad-signature", counted) { w in
            try w.runner(result { _ in ["job_id": 999_999] }(w))
        },
        Refused("runner: bad result", 422, "invalid-field", counted) { w in
            try w.runner(result { _ in ["result": "maybe"] }(w))
        },
        Refused("runner: duplicate keys", 400, "malformed-request", counted) { w in
            try w.signed(
                WebhookReceive.self, "/hooks/runner",
                bytes(
                    #"{"job_id": \#(w.holder), "fencing_token": \#(w.holderToken), "#
                        + #""result": "failed", "result": "succeeded"}"#))
        },
        Refused("runner: a replay", 401, "bad-signature", counted) { w in
            try w.expect(try w.runner(result()(w)), 200)
            return try w.runner(result()(w))
        },
        Refused("runner: an ended job's token", 409, "stale-fencing-token", counted) { w in
            try w.expect(try w.runner(result()(w)), 200)
            return try w.runner(result { _ in ["result": "failed"] }(w))
        },
        Refused("github: bad signature", 401, "bad-signature", counted) { w in
            try w.github(workflowRun.serializedBytes(), signature: "sha256=" + String(repeating: "0", count: 64))
        },
        Refused("github: wrong secret", 401, "bad-signature", counted) { w in
            try w.github(workflowRun.serializedBytes(), secret: "not-the-secret")
        },
        Refused("github: unknown project", 401, "bad-signature", counted) { w in
            try w.github(workflowRun.serializedBytes(), project: "nope")
        },
        Refused("github: a repository no integration names", 401, "bad-signature", counted) { w in
            try w.github(bytes(#"{"repository": {"full_name": "nobody/nothing"}}"#), project: nil)
        },
        Refused("github: missing signature", 401, "bad-signature", counted) { w in
            try w.h.call(
                WebhookReceive.self, "POST", "/hooks/github?project=app", json: workflowRun,
                headers: ["X-GitHub-Event": "workflow_run"])
        },
        Refused("github: truncated", 401, "bad-signature", counted) { w in
            let body = workflowRun.serializedBytes()
            let mac = Sodium.hmacSHA256(
                key: SecretBytes(copying: bytes(RouteWorld.secrets["gh-hook"]!), label: "g"),
                message: body)
            return try w.github(Array(body.dropLast(10)), signature: "sha256=" + Hex.encode(mac))
        },
        Refused("github: malformed, correctly signed", 400, "malformed-request", counted) { w in
            try w.github(bytes(#"{"workflow_run": "#))
        },
        Refused("github: not JSON, without a project", 415, "unsupported-media-type", counted) { w in
            try w.github(workflowRun.serializedBytes(), project: nil, contentType: "text/plain")
        },
        Refused("github: not JSON, wrongly signed", 415, "unsupported-media-type", counted) { w in
            try w.github(workflowRun.serializedBytes(), secret: "wrong", contentType: "text/plain")
        },
        Refused("github: too large", 413, "body-too-large", counted) { w in
            try w.h.call(
                WebhookReceive.self, "POST", "/hooks/github?project=app",
                body: [UInt8](repeating: 0x20, count: (25 << 20) + 1), contentType: "application/json")
        },
        Refused("gitlab: wrong token", 401, "bad-signature", counted) { w in
            try w.h.call(
                WebhookReceive.self, "POST", "/hooks/gitlab?project=gl", json: ["object_kind": "pipeline"],
                headers: ["X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": "wrong"])
        },
        Refused("gitlab: a repository no integration names", 401, "bad-signature", counted) { w in
            try w.h.call(
                WebhookReceive.self, "POST", "/hooks/gitlab",
                json: ["object_kind": "pipeline", "project": ["path_with_namespace": "nobody/nothing"]],
                headers: ["X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": RouteWorld.secrets["gl-hook"]!])
        },
        Refused("bitbucket: bad signature", 401, "bad-signature", counted) { w in
            try w.h.call(
                WebhookReceive.self, "POST", "/hooks/bitbucket?project=bb",
                json: ["commit_status": ["state": "SUCCESSFUL", "key": "k"]],
                headers: [
                    "X-Event-Key": "repo:commit_status_updated",
                    "X-Hub-Signature": "sha256=" + String(repeating: "0", count: 64),
                ])
        },
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(WebhookReceive.self, "GET", "/hooks/github")
        },
        Refused("unknown route", 404, "not-found", counted) { w in
            try w.h.call(WebhookReceive.self, "POST", "/hooks/elsewhere", json: [:])
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsCount(_ c: Refused) throws { try c.check() }
}

// MARK: - status (test_trigger.py, test_edge.py, test_hostile.py)

@Suite struct StatusRefusalTests {
    static func get(_ target: @escaping @Sendable (RouteWorld) -> String, _ who: String?)
        -> @Sendable (RouteWorld) throws -> Exchange
    {
        { w in try w.h.call(Status.self, "GET", target(w), token: who) }
    }

    static let cases: [Refused] = [
        Refused("job: no token", 401, "unauthenticated", counted, get({ "/api/v1/jobs/\($0.busy)" }, nil)),
        Refused(
            "job: unknown token", 401, "unauthenticated", counted, get({ "/api/v1/jobs/\($0.busy)" }, "drv_nope_nope")),
        Refused(
            "job: one the caller cannot read", 404, "not-found", audited("carol", job: { $0.busy }),
            get({ "/api/v1/jobs/\($0.busy)" }, "carol")),
        Refused(
            "job: no grant at all", 404, "not-found", audited("dave", job: { $0.busy }),
            get({ "/api/v1/jobs/\($0.busy)" }, "dave")),
        Refused("job: unknown", 404, "not-found", audited("bob"), get({ _ in "/api/v1/jobs/999999" }, "bob")),
        Refused("job: not a number", 404, "not-found", audited("bob"), get({ _ in "/api/v1/jobs/abc" }, "bob")),
        Refused("jobs: unknown token", 401, "unauthenticated", counted, get({ _ in "/api/v1/jobs" }, "drv_nope_nope")),
        Refused("locks: no token", 401, "unauthenticated", counted, get({ _ in "/api/v1/locks" }, nil)),
        Refused(
            "releases: unknown token", 401, "unauthenticated", counted,
            get({ _ in "/api/v1/releases?project=app&environment=hist" }, "drv_nope_nope")),
        Refused(
            "releases: no project", 422, "invalid-field", audited("alice"),
            get({ _ in "/api/v1/releases?environment=hist" }, "alice")),
        Refused(
            "releases: a bad limit", 422, "invalid-field", audited("alice"),
            get({ _ in "/api/v1/releases?project=app&environment=hist&limit=501" }, "alice")),
        Refused(
            "releases: unknown project", 404, "not-found", audited("alice", "nope/hist"),
            get({ _ in "/api/v1/releases?project=nope&environment=hist" }, "alice")),
        Refused(
            "releases: no read grant", 403, "forbidden", audited("dave", "app/hist"),
            get({ _ in "/api/v1/releases?project=app&environment=hist" }, "dave")),
        Refused("metrics: no token", 401, "unauthenticated", counted, get({ _ in "/metrics" }, nil)),
        Refused("metrics: no metrics grant", 403, "forbidden", audited("bob"), get({ _ in "/metrics" }, "bob")),
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Status.self, "POST", "/api/v1/jobs", token: "alice")
        },
        Refused("unknown route", 404, "not-found", counted, get({ _ in "/api/v2/nothing" }, nil)),
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsRecord(_ c: Refused) throws { try c.check() }

    /// A job the caller cannot read is answered as one that does not exist (test_edge.py).
    @Test func aHiddenJobIsNotFoundLikeAnUnknownOne() throws {
        let w = try RouteWorld()
        let hidden = try w.h.call(Status.self, "GET", "/api/v1/jobs/\(w.busy)", token: "carol")
        let unknown = try w.h.call(Status.self, "GET", "/api/v1/jobs/987654", token: "carol")
        #expect(hidden.body == unknown.body.replacing("987654", with: String(w.busy)))
        #expect(try w.h.call(Status.self, "GET", "/metrics", token: "bob").json?["action"]?.stringValue == "metrics")
    }
}

// MARK: - rollback and cancel (test_heartbeat.py, test_hostile.py, test_hooks_hardening.py)

@Suite struct RollbackRefusalTests {
    static func post(
        _ target: @escaping @Sendable (RouteWorld) -> String, _ body: JSON,
        _ who: String?
    ) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in try w.h.call(Rollback.self, "POST", target(w), json: body, token: who) }
    }

    static let rollbacks: @Sendable (RouteWorld) -> String = { _ in "/api/v1/rollbacks" }
    static let hist: JSON = ["project": "app", "environment": "hist"]

    static let cases: [Refused] = [
        Refused("no token", 401, "unauthenticated", counted, post(rollbacks, hist, nil)),
        Refused("no rollback grant", 403, "forbidden", audited("bob", "app/hist"), post(rollbacks, hist, "bob")),
        Refused(
            "no rollback grant, by job", 403, "forbidden", audited("bob", job: { $0.holder }),
            post({ "/api/v1/jobs/\($0.holder)/rollback" }, [:], "bob")),
        Refused(
            "unknown environment", 404, "not-found", audited("alice", "app/nope"),
            post(rollbacks, ["project": "app", "environment": "nope"], "alice")),
        Refused(
            "unknown job", 404, "not-found", audited("alice", "job/999999"),
            post({ _ in "/api/v1/jobs/999999/rollback" }, [:], "alice")),
        Refused(
            "missing environment", 422, "invalid-field", audited("alice"),
            post(rollbacks, ["project": "app"], "alice")),
        Refused(
            "unknown field", 422, "invalid-field", audited("alice"),
            post(rollbacks, ["project": "app", "environment": "hist", "ref": "v1"], "alice")),
        Refused(
            "unknown release", 422, "invalid-field", audited("alice", "app/hist"),
            post(rollbacks, ["project": "app", "environment": "hist", "to_release": "v9"], "alice")),
        Refused(
            "no history", 409, "conflict", audited("alice", "app/live"),
            post(rollbacks, ["project": "app", "environment": "live", "reason": "r"], "alice")),
        Refused(
            "busy, policy reject", 409, "environment-busy", audited("alice", "app/hist"), post(rollbacks, hist, "alice")
        ),
        Refused(
            "nothing before the job", 409, "conflict", audited("alice", job: { $0.done }),
            post({ "/api/v1/jobs/\($0.done)/rollback" }, ["reason": "r"], "alice")),
        Refused("not JSON", 400, "malformed-request", audited("alice")) { w in
            try w.h.call(
                Rollback.self, "POST", "/api/v1/rollbacks", body: bytes("{"), contentType: "application/json",
                token: "alice")
        },
        Refused("duplicate keys", 400, "malformed-request", audited("alice")) { w in
            try w.h.call(
                Rollback.self, "POST", "/api/v1/rollbacks",
                body: bytes(#"{"project":"app","project":"app","environment":"hist"}"#),
                contentType: "application/json", token: "alice")
        },
        Refused(
            "cancel: no token", 401, "unauthenticated", counted,
            post({ "/api/v1/jobs/\($0.holder)/cancel" }, [:], nil)),
        Refused(
            "cancel: no deploy grant", 404, "not-found", audited("carol", job: { $0.busy }),
            post({ "/api/v1/jobs/\($0.busy)/cancel" }, [:], "carol")),
        Refused(
            "cancel: unknown job", 404, "not-found", audited("alice", "job/999999"),
            post({ _ in "/api/v1/jobs/999999/cancel" }, [:], "alice")),
        Refused(
            "cancel: a job that has ended", 409, "conflict", audited("alice", job: { $0.done }),
            post({ "/api/v1/jobs/\($0.done)/cancel" }, ["reason": "r"], "alice")),
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Rollback.self, "GET", "/api/v1/rollbacks", token: "alice")
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsRecord(_ c: Refused) throws { try c.check() }
}
