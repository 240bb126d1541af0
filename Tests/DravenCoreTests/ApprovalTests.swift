import Testing

@testable import DravenCore
@testable import DravenFunctions

@Suite struct ApprovalTests {
    static let config = """
        {
          "chatops": {"slack": {"signing_secret": "slack-signing", "bot_token_secret": "slack-bot"}},
          "people": {"alice": {"chat": {"slack": "UALICE"}}, "bob": {}, "erin": {}, "carol": {}, "dave": {}},
          "groups": {"leads": ["alice", "bob", "erin"], "developers": ["carol"]},
          "projects": {"shop": {
            "notify": {"slack_channel": "C0DEPLOYS"},
            "environments": {
              "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"]},
              "selfok": {"refs": ["tag:v*"], "approvals": 1, "approver_groups": ["leads"], "self_approval": true},
              "strict": {"refs": ["tag:v*"], "approvals": 1, "approver_groups": ["leads"], "lock": "reject"},
              "short": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"], "approval_ttl": "60s"}
            }
          }},
          "grants": [
            {"group": "developers", "project": "shop", "actions": ["deploy", "read"]},
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read"]},
            {"person": "dave", "project": "shop", "actions": ["approve"]}
          ]
        }
        """

    /// A job awaiting approval in `env`, asked for by `who`.
    static func awaiting(_ store: TestStore, _ env: String = "prod", by who: String = "carol", sha: String? = nil)
        throws -> Int64
    {
        let eid = try store.environmentID("shop", env)
        let policy = try Policy.load(store.db, environmentID: eid)
        let pid = try store.db.scalar("SELECT id FROM projects WHERE name = 'shop'")!
        return try store.db.immediate { tx in
            let id = try StateMachine.create(
                tx,
                .init(
                    projectID: pid, environmentID: eid, ref: GitRef(kind: .tag, name: "v1.0.0"), sha: sha,
                    reason: "", requestedBy: try store.personID(who), policyVersion: policy.version),
                actor: who, subject: "shop/\(env)", now: store.now)
            try StateMachine.transition(tx, job: id, to: .awaitingApproval, actor: who, now: store.now)
            return id
        }
    }

    static func vote(
        _ store: TestStore, _ who: String, _ job: Int64, _ decision: Approvals.Decision = .approve,
        replay: (String, String)? = nil, at: Int64? = nil
    ) throws -> Approvals.Outcome {
        let voter = Approvals.Voter(personID: try store.personID(who), handle: who, via: "api", remote: "127.0.0.1")
        return try store.db.immediate { tx in
            try Approvals.vote(
                tx, job: job, voter: voter, decision: decision, comment: "", replay: replay.map { ($0.0, $0.1) },
                now: at ?? store.now)
        }
    }

    /// What a refused vote must leave alone: every row of every table (the refusal's own audit
    /// record is written by `CGI.handle`, not by `Approvals.vote`).
    static func snapshot(_ store: TestStore) throws -> StoreSnapshot {
        try StoreSnapshot(store.db)
    }

    @Test func twoDistinctApproversStartTheJobAndARepeatCountsOnce() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        let first = try Self.vote(store, "alice", job)
        #expect(first.counted && first.approvals == 1 && first.required == 2 && first.state == .awaitingApproval)
        let again = try Self.vote(store, "alice", job)
        #expect(!again.counted && again.approvals == 1)
        #expect(try store.count("approvals", "job_id = \(job)") == 1)
        #expect(try store.count("audit", "action = 'approval.repeat'") == 1)
        #expect(try Locks.holder(store.db, environment: try store.environmentID("shop", "prod")) == nil)
        let second = try Self.vote(store, "bob", job)
        #expect(second.counted && second.approvals == 2 && second.state == .dispatching)
        #expect(try store.state(job) == .dispatching)
        #expect(try Locks.holder(store.db, environment: try store.environmentID("shop", "prod"))?.jobID == job)
        #expect(try store.count("outbox", "kind = 'dispatch' AND job_id = \(job)") == 1)
        #expect(try store.count("audit", "action = 'approval.approve'") == 2)
    }

    @Test(arguments: [
        ("carol", "carol", DravenError.forbidden(action: "approve", project: "shop", environment: "prod")),
        (
            "dave", "carol",
            .policyDenied(
                rule: "approver_groups", detail: "approvals for shop/prod come from leads; dave is in none of them")
        ),
        (
            "alice", "alice",
            .policyDenied(
                rule: "self_approval",
                detail: "alice asked for this deploy and shop/prod does not allow approving your own deploy")
        ),
    ])
    func refusedVotesThrowAndChangeNothing(_ voter: String, _ requester: String, _ expected: DravenError) throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store, by: requester)
        let before = try Self.snapshot(store)
        #expect(throws: expected) { try Self.vote(store, voter, job, replay: ("slack", "sig-\(voter)")) }
        #expect(try Self.snapshot(store) == before)
    }

    @Test func selfApprovalWhenThePolicyAllowsItAndSelfRejectionAlways() throws {
        let store = try TestStore(config: Self.config)
        #expect(try Self.vote(store, "alice", try Self.awaiting(store, "selfok", by: "alice")).state == .dispatching)
        #expect(try Self.vote(store, "alice", try Self.awaiting(store, by: "alice"), .reject).state == .rejected)
    }

    @Test func rejectEndsTheJobAndLaterVotesAreConflicts() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        _ = try Self.vote(store, "alice", job)
        #expect(try Self.vote(store, "erin", job, .reject).state == .rejected)
        #expect(try store.state(job) == .rejected)
        #expect(throws: DravenError.conflict("job \(job) is rejected; only a job awaiting approval takes votes")) {
            try Self.vote(store, "bob", job)
        }
    }

    @Test func whoApprovedMayStillReject() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        _ = try Self.vote(store, "alice", job)
        let changed = try Self.vote(store, "alice", job, .reject)
        #expect(changed.counted && changed.state == .rejected)
    }

    @Test func aReplayKeyIsAcceptedOnce() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        _ = try Self.vote(store, "alice", job, replay: ("slack", "v0=abc"))
        let before = try Self.snapshot(store)
        #expect(throws: DravenError.badSignature("this signed request was already used (replay)")) {
            try Self.vote(store, "bob", job, replay: ("slack", "v0=abc"))
        }
        #expect(try Self.snapshot(store) == before)
    }

    @Test func slackSignaturesAreForgottenOnceTheirTimestampIsRefusedAnyway() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        _ = try Self.vote(store, "alice", job, replay: ("slack", "v0=old"))
        _ = try Self.vote(store, "bob", job, .reject, replay: ("slack", "v0=new"), at: store.now + 500)
        try Deliveries.forgetOldSlackSignatures(store.db, now: store.now + 700)
        #expect(try store.db.query("SELECT delivery_id FROM deliveries") { $0.text(0) } == ["v0=new"])
    }

    @Test func approvalsForAnotherShaOrPolicyVersionDoNotCount() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store, sha: String(repeating: "a", count: 40))
        _ = try Self.vote(store, "alice", job)
        // The tag moves: the job takes the new sha; alice's approval was for the old one.
        let moved = try store.db.immediate { tx in
            try PushEvent.apply(
                tx, projectID: 1, moves: [("refs/tags/v1.0.0", String(repeating: "b", count: 40))], delivery: "d1",
                now: store.now)
        }
        #expect(moved == [job])
        #expect(try Self.vote(store, "bob", job).approvals == 1)
        // The policy changes (a new version): bob's approval was given under the old one.
        try store.apply(
            Self.config.replacingOccurrences(
                #""approvals": 2, "approver_groups": ["leads"]}"#,
                #""approvals": 2, "approver_groups": ["leads"], "lease": "20m"}"#))
        let after = try Self.vote(store, "erin", job)
        #expect(after.approvals == 1 && after.state == .awaitingApproval)
        let list = try Approvals.list(store.db, job: try Job.require(store.db, id: job))
        #expect(list["votes"]?.arrayValue?.map { $0["current"]?.boolValue } == [false, false, true])
        #expect(try Self.vote(store, "alice", job).state == .dispatching)
    }

    @Test func noApprovalLetsThroughARefThePolicyNoLongerAccepts() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        try store.apply(
            Self.config.replacingOccurrences(#""prod": {"refs": ["tag:v*"]"#, #""prod": {"refs": ["tag:release-*"]"#))
        let before = try Self.snapshot(store)
        #expect {
            try Self.vote(store, "alice", job)
        } throws: { error in
            if case DravenError.policyDenied(let rule, _) = error { return rule == "refs" }
            return false
        }
        #expect(try Self.snapshot(store) == before)
        #expect(try Self.vote(store, "bob", job, .reject).state == .rejected)  // it can still be turned down
    }

    @Test func peopleNoLongerInAnApproverGroupStopCounting() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        _ = try Self.vote(store, "alice", job)
        try store.apply(
            Self.config.replacingOccurrences(#""leads": ["alice", "bob", "erin"]"#, #""leads": ["bob", "erin"]"#))
        #expect(try Self.vote(store, "bob", job).approvals == 1)
    }

    @Test func theLastApprovalInABusyRejectEnvironmentIsRefusedWhole() throws {
        let store = try TestStore(config: Self.config)
        let holder = try Self.awaiting(store, "strict")
        #expect(try Self.vote(store, "alice", holder).state == .dispatching)
        let job = try Self.awaiting(store, "strict")
        let before = try Self.snapshot(store)
        #expect(throws: DravenError.environmentBusy(environment: "strict", heldBy: holder)) {
            try Self.vote(store, "bob", job)
        }
        #expect(try Self.snapshot(store) == before)
    }

    @Test func expiryMovesOnlyJobsPastTheirWindow() throws {
        let store = try TestStore(config: Self.config)
        let old = try Self.awaiting(store, "short")
        store.now += 30
        let young = try Self.awaiting(store, "short")
        let other = try Self.awaiting(store, "prod")
        #expect(try Approvals.expireDue(store.db, now: store.now + 30) == [old])
        #expect(
            try store.state(old) == .expired && store.state(young) == .awaitingApproval
                && store.state(other) == .awaitingApproval)
        #expect(
            try store.count("audit", "action = 'job.expired' AND actor = 'draven sweep' AND subject = 'job/\(old)'")
                == 1)
        #expect(try Approvals.expireDue(store.db, now: store.now + 30).isEmpty)  // idempotent
        // Past its window but not yet swept, a job takes no votes.
        #expect(throws: DravenError.self) { try Self.vote(store, "alice", young, at: store.now + 61) }
    }

    @Test func chatRequestRowsWhenAJobStartsAndStopsWaiting() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        let posts = try store.db.query("SELECT payload FROM outbox WHERE job_id = ?1", [.int(job)]) {
            try JSON.parse($0.text(0))
        }
        #expect(posts.count == 1)
        #expect(posts[0]["channel"]?.stringValue == "slack_approval" && posts[0]["action"]?.stringValue == "post")
        #expect(posts[0]["slack_channel"]?.stringValue == "C0DEPLOYS")
        let buttons = posts[0]["blocks"]?.arrayValue?.last?["elements"]?.arrayValue ?? []
        #expect(buttons.map { $0["action_id"]?.stringValue } == ["draven_approve", "draven_reject"])
        #expect(buttons.allSatisfy { $0["value"]?.stringValue == String(job) })
        _ = try Self.vote(store, "bob", job, .reject)
        let update = try store.db.first("SELECT payload FROM outbox WHERE job_id = ?1 ORDER BY id DESC", [.int(job)]) {
            try JSON.parse($0.text(0))
        }
        #expect(update?["action"]?.stringValue == "update")
        #expect(update?["text"]?.stringValue?.hasSuffix("was REJECTED by bob") == true)
        #expect(update?["blocks"]?.arrayValue?.count == 1)  // no buttons
        // The update is not claimed, by any deliverer, before the request it updates was posted.
        let (post, edit) = try #require(
            try store.db.first(
                "SELECT min(id), max(id) FROM outbox WHERE job_id = ?1 AND payload LIKE '%slack_approval%'",
                [.int(job)], { ($0.int(0), $0.int(1)) }))
        try store.db.immediate { tx in
            #expect(try Outbox.claim(tx, id: edit, lease: 60, now: store.now) == nil)
            #expect(try Outbox.claim(tx, id: post, lease: 60, now: store.now) != nil)
            try Outbox.settle(tx, id: post, state: .delivered, error: nil, now: store.now)
            #expect(try Outbox.claim(tx, id: edit, lease: 60, now: store.now) != nil)
        }
    }

    @Test func slackWebAPICalls() throws {
        let store = try TestStore(config: Self.config)
        let job = try Self.awaiting(store)
        let update: JSON = [
            "channel": "slack_approval", "action": "update", "job_id": .int(job), "slack_channel": "C0DEPLOYS",
            "text": "t", "blocks": [],
        ]
        // The update waits (retryably) until the request it updates has been posted.
        #expect(throws: TransportError.self) { try ApprovalMessages.request(store.db, update) }
        try store.db.immediate { tx in try ApprovalMessages.remember(tx, job: job, channel: "C0CHANNELID", ts: "17.5") }
        let request = try ApprovalMessages.request(store.db, update)
        #expect(request.url == "https://slack.com/api/chat.update" && request.secretName == "slack-bot")
        let body = try JSON.parse(request.body)
        #expect(body["channel"]?.stringValue == "C0CHANNELID" && body["ts"]?.stringValue == "17.5")
        let ephemeral = try ApprovalMessages.request(
            store.db,
            [
                "channel": "slack_approval", "action": "ephemeral", "slack_channel": "C1",
                "user": "U1", "text": "no",
            ])
        #expect(ephemeral.url.hasSuffix("/chat.postEphemeral"))
        #expect(try JSON.parse(ephemeral.body) == ["channel": "C1", "user": "U1", "text": "no"])
        guard case .header(let name, let prefix)? = ephemeral.credential else {
            Issue.record("no credential header")
            return
        }
        #expect(name == "Authorization" && prefix == "Bearer ")
    }

    @Test func slackAPIAnswers() {
        func outcome(_ body: String, status: Int = 200) -> (String?, Bool, String?) {
            let o = ApprovalMessages.outcome(OutboundResponse(status: status, body: Array(body.utf8)))
            return (o.error, o.retry, o.posted.map { "\($0.channel)/\($0.ts)" })
        }
        #expect(outcome(#"{"ok":true,"channel":"C1","ts":"1.2"}"#) == (nil, false, "C1/1.2"))
        #expect(
            outcome(#"{"ok":false,"error":"channel_not_found"}"#) == (
                "Slack refused the message: channel_not_found", false, nil
            ))
        #expect(outcome(#"{"ok":false,"error":"ratelimited"}"#).1 == true)
        #expect(outcome("<html>").1 == true)
    }

    @Test func slackTextIsEscaped() {
        #expect(ApprovalMessages.escape("a <b> & c") == "a &lt;b&gt; &amp; c")
        #expect([86400, 5400, 7200, 45].map(ApprovalMessages.duration) == ["1d", "90m", "2h", "45s"])
    }

    /// A platform without its `[chatops]` table (or its secret) is refused before anything in the request is read.
    @Test(arguments: ["/chatops/slack", "/chatops/teams", "/chatops/mattermost"])
    func unconfiguredPlatformsFailClosed(_ path: String) throws {
        let store = try TestStore()
        let context = Context(paths: store.paths, function: "approve", now: store.now)
        let request = Request(
            method: "POST", path: path, contentType: "application/x-www-form-urlencoded",
            body: Array("user_id=U1&text=approve+1&token=x".utf8))
        #expect {
            try Approve.respond(to: request, context: context)
        } throws: { error in
            if case DravenError.badSignature(let why) = error { return why.contains("is not configured") }
            return false
        }
    }

    @Test(arguments: [
        ("<at>draven</at>&nbsp;approve 12", "approve 12"),
        ("<p><at>Draven</at> reject #7 too risky</p>", "reject #7 too risky"),
        ("status 3", "status 3"),
        ("<at>draven</at> approve 1 &lt;ok&gt;", "approve 1 <ok>"),
    ])
    func teamsMessagesAsPlainText(_ html: String, _ text: String) {
        #expect(ChatCommand.plainText(html) == text)
    }

    @Test func votesAreDecisionAndComment() throws {
        #expect(try ApprovalRequest(JSON.parse(#"{"decision":"reject","comment":"no"}"#)).decision == .reject)
        #expect(try ApprovalRequest(JSON.parse(#"{"decision":"approve"}"#)).comment == "")
        for (body, pointer) in [
            (#"{"decision":"yes"}"#, "/decision"), (#"{}"#, "/decision"), (#"{"decision":"approve","by":"x"}"#, "/by"),
            (#"{"decision":"approve","comment":1}"#, "/comment"),
        ] {
            #expect {
                try ApprovalRequest(JSON.parse(body))
            } throws: { error in
                if case DravenError.invalidField(let p, _) = error { return p == pointer }
                return false
            }
        }
    }

    @Test func pushesNameTheRefAndItsNewHead() throws {
        let c40 = String(repeating: "c", count: 40)
        let parse = { (json: String) in Provider.github.ci.pushMoves(Array(json.utf8)).map { "\($0.ref) \($0.sha)" } }
        #expect(parse(#"{"ref":"refs/heads/main","after":"\#(c40)","deleted":false}"#) == ["refs/heads/main \(c40)"])
        // Its `after` is all zeros: a deletion.
        #expect(Provider.github.ci.pushMoves(Fixtures.bytes("github/push.json")).isEmpty)
        #expect(
            parse(#"{"ref":"refs/heads/x","after":"\#(String(repeating: "0", count: 40))","deleted":true}"#).isEmpty)
        #expect(
            parse(#"{"ref":"refs/heads/x","after":"\#(String(repeating: "a", count: 40))","deleted":true}"#).isEmpty)
        #expect(parse(#"{"ref":"refs/heads/x","after":"nope"}"#).isEmpty)
        #expect(Provider.github.ci.isPush(event: "push") && Provider.gitlab.ci.isPush(event: "Tag Push Hook"))
        #expect(Provider.bitbucketDataCenter.ci.isPush(event: "repo:refs_changed"))
        #expect(!Provider.github.ci.isPush(event: "workflow_run") && !Provider.gitlab.ci.isPush(event: "push"))
    }

    @Test func bitbucketCloudPushesNameEveryRefTheyMoved() throws {
        #expect(Provider.bitbucketCloud.ci.isPush(event: "repo:push"))
        #expect(!Provider.bitbucketCloud.ci.isPush(event: "repo:commit_status_updated"))
        // The real payload moves branch name-of-branch from 1e65c05… to 709d658….
        #expect(
            Provider.bitbucketCloud.ci.pushMoves(Fixtures.bytes("bitbucket-cloud/repo_push.json")).map {
                "\($0.ref) \($0.sha)"
            } == ["refs/heads/name-of-branch 709d658dc5b6d6afcd46049c2f332ee3f515a67d"])
        let (a40, b40) = (String(repeating: "a", count: 40), String(repeating: "b", count: 40))
        let json =
            #"{"push":{"changes":[{"new":{"name":"main","type":"branch","target":{"hash":"\#(a40)"}}},"#
            + #"{"new":{"name":"v1","type":"annotated_tag","target":{"hash":"\#(b40)"}}},"#
            + #"{"new":null,"old":{"name":"gone","type":"branch","target":{"hash":"\#(a40)"}}},"#
            + #"{"new":{"name":"odd","type":"bookmark","target":{"hash":"\#(a40)"}}},"#
            + #"{"new":{"name":"short","type":"branch","target":{"hash":"abc"}}}]}}"#
        #expect(
            Provider.bitbucketCloud.ci.pushMoves(Array(json.utf8)).map { "\($0.ref) \($0.sha)" }
                == ["refs/heads/main \(a40)", "refs/tags/v1 \(b40)"])
    }

    @Test func bitbucketDataCenterPushesNameEveryRefTheyMoved() throws {
        // The real payload deletes a branch: nothing moved.
        let dc = Provider.bitbucketDataCenter.ci
        #expect(dc.pushMoves(Fixtures.bytes("bitbucket-dc/repo_refs_changed.json")).isEmpty)
        let (a40, b40) = (String(repeating: "a", count: 40), String(repeating: "b", count: 40))
        let json =
            #"{"changes":[{"ref":{"id":"refs/heads/main","type":"BRANCH"},"toHash":"\#(a40)","type":"UPDATE"},"#
            + #"{"refId":"refs/tags/v1","toHash":"\#(b40)","type":"ADD"},"#
            + #"{"ref":{"id":"refs/heads/old"},"toHash":"\#(String(repeating: "0", count: 40))","type":"DELETE"},"#
            + #"{"ref":{"id":"refs/heads/odd"},"toHash":"\#(a40)","type":"DELETE"}]}"#
        #expect(
            dc.pushMoves(Array(json.utf8)).map { "\($0.ref) \($0.sha)" }
                == ["refs/heads/main \(a40)", "refs/tags/v1 \(b40)"])
    }

    @Test(arguments: [
        (#"{"chatops": {"slack": {}}}"#, "chatops.slack.signing_secret: is required"),
        (
            #"{"chatops": {"slack": {"signing_secret": "s", "api_url": "ftp://x"}}}"#,
            "chatops.slack.api_url: must be an http(s) URL such as https://slack.com/api"
        ),
        (#"{"chatops": {"teams": {"token": "t"}}}"#, "chatops.teams.token: is not a known setting"),
        (#"{"chatops": {"irc": {}}}"#, "chatops.irc: is not a known setting"),
        (
            #"{"projects": {"p": {"notify": {"slack_channel": "C1"}, "environments": {"e": {"refs": ["tag:v*"]}}}}}"#,
            "projects.p.notify.slack_channel: needs [chatops.slack] bot_token_secret (approval requests are posted "
                + "with the bot token)"
        ),
    ])
    func chatopsConfiguration(_ text: String, _ problem: String) throws {
        #expect {
            try Config.validate(try JSON.parse(text), file: "t")
        } throws: { error in
            (error as? ConfigError)?.description.contains("t: " + problem) == true
        }
    }
}
