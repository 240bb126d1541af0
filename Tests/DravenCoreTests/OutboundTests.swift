import Testing

@testable import DravenCore
@testable import DravenFunctions

private func answer(_ status: Int, _ body: String = "{}") -> Result<OutboundResponse, TransportError> {
    .success(OutboundResponse(status: status, body: Array(body.utf8)))
}

@Suite struct RedactorTests {
    static let token = "s3cr3t/Token+value=="

    @Test func theCredentialAndItsEncodingsAreRemoved() {
        let secret = SecretBytes(copying: Array(Self.token.utf8), label: "t")
        let r = Redactor([secret])
        let b64 = String(decoding: Redactor.base64(Array(Self.token.utf8), urlSafe: false), as: UTF8.self)
        let url = Dispatch.percentEncode(Self.token)
        let text = r.clean("bad credentials: \(Self.token) (as \(url), or \(b64)=)")
        #expect(!text.contains(Self.token) && !text.contains(url) && !text.contains(b64))
        #expect(text == "bad credentials: [redacted] (as [redacted], or [redacted]=)")
    }

    @Test func base64MatchesTheStandardEncoding() {
        let plain = String(decoding: Redactor.base64(Array("any carnal pleas".utf8), urlSafe: false), as: UTF8.self)
        #expect(plain == "YW55IGNhcm5hbCBwbGVhcw")
        #expect(String(decoding: Redactor.base64(Array("ab?".utf8), urlSafe: true), as: UTF8.self) == "YWI_")
        #expect(String(decoding: Redactor.base64([0xfb, 0xff], urlSafe: false), as: UTF8.self) == "+/8")
    }

    @Test(arguments: [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
        ("header was 'bearer   xyz123'", "header was 'bearer   [redacted]'"),
        ("Basic dXNlcjpwYXNz", "Basic [redacted]"),
        ("PRIVATE-TOKEN: glpat-AAAA1111", "PRIVATE-TOKEN: [redacted]"),
        ("token=abc&ref=main", "token=[redacted]&ref=main"),
        ("used ghp_0123456789abcdef and github_pat_11AB_cd", "used ghp_[redacted] and github_pat_[redacted]"),
        (
            "{\"t\":\"glptt-zz99\"} xoxb-1-2-abc drv_12_secret",
            "{\"t\":\"glptt-[redacted]\"} xoxb-[redacted] drv_[redacted]"
        ),
        ("no secrets here, just a 404", "no secrets here, just a 404"),
    ])
    func credentialShapesAreRemoved(_ input: String, _ expected: String) {
        #expect(Redactor.patternsOnly.clean(input) == expected)
    }

    @Test func messagesAreBoundedAfterRedactionAndFreeOfControlCharacters() {
        let secret = SecretBytes(copying: Array("abcdefgh".utf8), label: "t")
        let long = String(repeating: "é", count: 240) + "abcdefgh" + String(repeating: "x", count: 600)
        let text = Redactor([secret]).clean(long)
        #expect(text.utf8.count <= Redactor.limit && text.hasSuffix("…"))
        #expect(!text.contains("abcdefgh") && text.contains("[redacted]"))
        #expect(Redactor.patternsOnly.clean("a\nb\tc\u{7f}") == "a b c ")
    }

    /// Found by the fuzz target `redactor` (Tests/Fuzz/regressions/redactor/binary-credential): a
    /// credential that is not UTF-8 cut each `é` in two, the halves became U+FFFD (three bytes)
    /// after the cut, and the message had 502 bytes.
    @Test func aBinaryCredentialDoesNotPushTheMessagePastTheBound() {
        let secret = SecretBytes(copying: Array(repeating: [0xa9, 0xc3], count: 4).flatMap { $0 }, label: "t")
        let text = Redactor([secret]).clean(String(repeating: "é", count: 400))
        #expect(text.utf8.count <= Redactor.limit && text.hasSuffix("…") && text.contains("[redacted]"))
    }

    @Test func aLongProviderMessageIsCutBeforeItsLastWord() throws {
        let message = String(repeating: "word ", count: 500) + "tail"
        let said = try #require(Dispatch.providerMessage(try JSON.parse(#"{"message": "\#(message)"}"#)))
        #expect(said.utf8.count <= 2048 + 3 && said.hasSuffix(" …"))
    }

    @Test func aDispatchRefusalQuotingTheTokenIsStoredWithoutIt() throws {
        let (store, first, _) = try DeliveryTests.setUp()
        let body = #"{"message": "Bad credentials: Bearer tok (you sent tok)"}"#
        let transport = ScriptedTransport([answer(401, body), DeliveryTests.ok()])
        var delivery = Delivery(db: store.db, paths: store.paths, transport: transport)
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(try store.state(first) == .failed)
        #expect(try store.count("job_events", "detail LIKE '%Bearer tok%' OR detail LIKE '%sent tok%'") == 0)
        #expect(try store.count("job_events", "detail LIKE '%Bearer [redacted] (you sent [redacted])%'") == 1)
        #expect(try store.count("outbox", "last_error LIKE '%tok%'") == 0)
        let kept = "Bad credentials: Bearer [redacted] (you sent [redacted])"
        #expect(try store.count("outbox", "last_error LIKE '%\(kept)'") == 1)
    }
}

@Suite struct NotificationRedactionTests {
    @Test func aRefusedNotificationQuotingItsWebhookURLIsStoredWithoutIt() throws {
        let (store, first, _) = try DeliveryTests.setUp()
        let hook = "https://hooks.example/services/T0/B0/sekretXYZ42"
        let paths = SecretsPaths(store.paths)
        try SecretsAdmin.update(paths, db: store.db, actor: "t", now: store.now) { d in
            let value = SecretBytes(copying: Array(hook.utf8), label: "slack-hook")
            return (try d.set("slack-hook", kind: .token, value: value), ["slack-hook"])
        }
        _ = try store.db.immediate { tx in
            try Outbox.enqueue(
                tx, kind: .notify, job: first,
                payload: [
                    "channel": "slack", "secret": "slack-hook", "job_id": .int(first), "text": "draven: done",
                ], now: store.now)
        }
        let id = try #require(try store.db.scalar("SELECT max(id) FROM outbox WHERE kind = 'notify'"))
        let said = #"{"message": "no_service for \#(hook) (xoxb-123-456-abc)"}"#
        var delivery = Delivery(db: store.db, paths: store.paths, transport: ScriptedTransport([answer(404, said)]))
        try delivery.deliver([id], now: { store.now })
        let error = try store.db.first("SELECT last_error FROM outbox WHERE id = ?1", [.int(id)]) { $0.text(0) }
        #expect(
            error == "Slack incoming webhook refused the notification (404): "
                + "no_service for [redacted] (xoxb-[redacted])")
        #expect(try store.count("audit", "action = 'notify.failed' AND detail LIKE '%sekretXYZ42%'") == 0)
        #expect(try store.count("audit", "action = 'notify.failed' AND detail LIKE '%no_service for [redacted]%'") == 1)
    }
}

@Suite struct PollBackoffTests {
    /// A running job (run 9) whose first poll the provider refused at `store.now + 60`.
    static func refused() throws -> (TestStore, Int64) {
        let (store, first, _) = try DeliveryTests.setUp()
        var delivery = Delivery(db: store.db, paths: store.paths, transport: ScriptedTransport([DeliveryTests.ok()]))
        try delivery.deliver(Delivery.due(store.db, now: store.now), now: { store.now })
        #expect(try Sweeper(pollAfter: 60).queuePolls(store.db, now: store.now + 60) == [first])
        delivery = Delivery(
            db: store.db, paths: store.paths,
            transport: ScriptedTransport([answer(401)]))
        try delivery.deliver(Delivery.due(store.db, now: store.now + 60), now: { store.now + 60 })
        return (store, first)
    }

    @Test func aRefusedPollBacksOffDoublingUpToTheLimit() throws {
        let (store, first) = try Self.refused()
        let sweeper = Sweeper(pollAfter: 60, pollBackoffLimit: 200)
        for later in [61, 90, 179] { #expect(try sweeper.queuePolls(store.db, now: store.now + Int64(later)) == []) }
        #expect(try sweeper.queuePolls(store.db, now: store.now + 180) == [first])  // 60 + 2 · 60
        var delivery = Delivery(
            db: store.db, paths: store.paths,
            transport: ScriptedTransport([answer(403)]))
        try delivery.deliver(Delivery.due(store.db, now: store.now + 180), now: { store.now + 180 })
        // Two refusals: 4 · 60 = 240, capped at 200.
        #expect(try sweeper.queuePolls(store.db, now: store.now + 379) == [])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 380) == [first])
        #expect(try store.count("job_events", "job_id = \(first) AND detail LIKE '%refused the poll%'") == 2)
    }

    @Test func wordFromTheProviderEndsTheBackoff() throws {
        let (store, first) = try Self.refused()
        try store.db.run("UPDATE jobs SET provider_seen_at = ?2 WHERE id = ?1", [.int(first), .int(store.now + 70)])
        let sweeper = Sweeper(pollAfter: 60)
        #expect(try sweeper.queuePolls(store.db, now: store.now + 129) == [])
        #expect(try sweeper.queuePolls(store.db, now: store.now + 130) == [first])
    }

    @Test func aGitLabTriggerTokenIsNeverUsedToPollOrCancel() throws {
        var t = RunControlTests.target(.gitlab)
        t.integration["api_token_secret"] = nil
        #expect(RunControl.refusal(t) != nil)
        #expect(throws: DispatchError.self) { try RunControl.request(.poll, runID: "5", target: t) }
        #expect(throws: DispatchError.self) { try RunControl.request(.cancel, runID: "5", target: t) }
        t.method = "pipeline"  // token_secret is then a project or personal access token
        #expect(try RunControl.request(.poll, runID: "5", target: t).secretName == "t")
        #expect(RunControl.refusal(RunControlTests.target(.gitlab)) == nil)
    }
}
