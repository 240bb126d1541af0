import Testing

@testable import DravenCore

/// The event stream's parts in process: Standard Webhooks signing against the reference
/// implementation, the subscription filter, the trace context, and what a move publishes (in
/// order, per subscriber). End to end (a receiver, retries, dead letters, redelivery):
/// Tests/e2e/test_events.py.
@Suite struct EventStreamTests {
    // The vector of SignedRequestTests, made with PyPI standardwebhooks 1.1.0:
    // Webhook(secret).sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1700000000, #"{"object_kind":"pipeline"}"#).
    @Test func signaturesAreTheReferenceImplementations() throws {
        let secret = SecretBytes(copying: Array(SignedRequestTests.secret.utf8), label: "test")
        let key = try #require(StandardWebhooks.key(secret))
        let signature = StandardWebhooks.signature(
            key: key, id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp: 1_700_000_000,
            body: Array(#"{"object_kind":"pipeline"}"#.utf8))
        #expect(signature == SignedRequestTests.signature)
        // Another body, id or time is another signature.
        let other = StandardWebhooks.signature(
            key: key, id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp: 1_700_000_001,
            body: Array(#"{"object_kind":"pipeline"}"#.utf8))
        #expect(other != signature)
        #expect(StandardWebhooks.key(SecretBytes(copying: Array("whsec_".utf8), label: "t")) == nil)
        #expect(StandardWebhooks.key(SecretBytes(copying: Array("whsec_not base64!".utf8), label: "t")) == nil)
    }

    @Test func filtersTakeNamesFamiliesAndEverything() throws {
        let filter = try EventFilter.parse(["job.*", "plan_run.finished"]).get()
        #expect(filter.matches("job.created") && filter.matches("job.finished"))
        #expect(filter.matches("plan_run.finished"))
        #expect(!filter.matches("plan_run.started") && !filter.matches("lock.acquired"))
        #expect(!filter.matches("jobs.created"))
        let all = try EventFilter.parse(["*"]).get()
        #expect(EventCatalog.types.keys.allSatisfy(all.matches))
        for bad in [[], ["jobs.*"], ["job.done"], ["job"], ["*.finished"], ["job.**"]] {
            guard case .failure = EventFilter.parse(bad) else {
                Issue.record("\(bad) should be refused")
                continue
            }
        }
        // Every family of the catalogue is a valid pattern.
        for family in EventCatalog.families { #expect((try? EventFilter.parse([family + ".*"]).get()) != nil) }
    }

    @Test func traceparentsAreValidatedAndBadOnesIgnored() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceContext.parse(valid) == valid)
        #expect(TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00") != nil)
        // A later version is read by the fields this one defines.
        #expect(
            TraceContext.parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next")
                == "01" + valid.dropFirst(2))
        for bad in [
            nil, "", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero parent id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            valid + "-extra",  // version 00 is exactly 55 characters
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            #expect(TraceContext.parse(bad) == nil, "\(bad ?? "nil")")
        }
    }

    static let config =
        String(TestStore.config.dropLast())
            + """
            , "events": {"source": "https://deploy.example.com", "subscriptions": [
                {"id": "all-jobs", "url_secret": "u1", "signing_secret": "k1", "events": ["job.*"]},
                {"id": "locks", "url_secret": "u2", "signing_secret": "k2", "events": ["lock.*", "release.*"],
                 "max_attempts": 3}
              ]}}
            """

    @Test func aMovePublishesToEachSubscriberInOrder() throws {
        let store = try TestStore(config: Self.config)
        let job = try store.newJob()
        let policy = try Policy.load(store.db, environmentID: try store.environmentID("shop", "demo"))
        try store.db.immediate { tx in
            _ = try StateMachine.start(tx, job: job, policy: policy, actor: "carol", now: store.now)
        }
        let names = try store.db.query("SELECT name FROM events ORDER BY id") { $0.text(0) }
        #expect(names == ["job.created", "job.dispatching", "lock.acquired"])
        let streams = try store.db.query(
            """
            SELECT d.subscription, d.sequence, e.name FROM event_deliveries d JOIN events e ON e.id = d.event
            ORDER BY d.subscription, d.sequence
            """
        ) { "\($0.text(0)) \($0.int(1)) \($0.text(2))" }
        #expect(streams == ["all-jobs 1 job.created", "all-jobs 2 job.dispatching", "locks 1 lock.acquired"])
        // A subscriber's second event cannot be claimed while its first waits; another's can.
        let rows = try store.db.query("SELECT id, stream FROM outbox WHERE kind = 'event' ORDER BY id") {
            ($0.int(0), $0.text(1))
        }
        #expect(rows.map(\.1) == ["event:all-jobs", "event:all-jobs", "event:locks"])
        try store.db.immediate { tx in
            #expect(try Outbox.claim(tx, id: rows[1].0, lease: 180, now: store.now) == nil)
            #expect(try Outbox.claim(tx, id: rows[2].0, lease: 180, now: store.now) != nil)
            #expect(try Outbox.claim(tx, id: rows[0].0, lease: 180, now: store.now) != nil)
            // Still delivering: the second waits. Dead, it holds nothing back.
            #expect(try Outbox.claim(tx, id: rows[1].0, lease: 180, now: store.now) == nil)
            try Outbox.settle(tx, id: rows[0].0, state: .dead, error: "test", now: store.now)
            #expect(try Outbox.claim(tx, id: rows[1].0, lease: 180, now: store.now) != nil)
        }
        // The CloudEvents document: the attributes, the padded sequence, the CDEvent-free draven type.
        let event = try #require(try Events.find(store.db, id: 2))
        let document = try JSON.parse(String(decoding: CloudEvent.document(event, sequence: 2), as: UTF8.self))
        #expect(document["specversion"]?.stringValue == "1.0")
        #expect(document["type"]?.stringValue == "dev.draven.job.dispatching")
        #expect(document["source"]?.stringValue == "https://deploy.example.com")
        #expect(document["subject"]?.stringValue == "job/\(job)")
        #expect(document["sequence"]?.stringValue == "00000000000000000002")
        #expect(document["data"]?["job"]?["state"]?.stringValue == "dispatching")
        #expect(document["traceparent"] == nil)
    }

    @Test func withoutSubscriptionsNothingIsWritten() throws {
        let store = try TestStore()
        _ = try store.newJob()
        #expect(try store.count("events") == 0)
        #expect(try store.count("outbox", "kind = 'event'") == 0)
    }

    @Test func theConfigurationIsCheckedKeyByKey() throws {
        func problems(_ events: String) -> [String] {
            let text = String(TestStore.config.dropLast()) + #", "events": "# + events + "}"
            do {
                _ = try Config.validate(try JSON.parse(text), file: "t")
                return []
            } catch let error as ConfigError {
                return error.problems.map { "\($0.key): \($0.reason)" }
            } catch {
                return ["\(error)"]
            }
        }
        #expect(
            problems(#"{"subscriptions": [{"id": "a", "url_secret": "u", "signing_secret": "k", "events": ["*"]}]}"#)
                .isEmpty)
        let bad = problems(
            #"{"subscriptions": [{"id": "a b", "url_secret": "u", "events": ["jobs.*"], "max_attempts": 0, "x": 1}]}"#)
        #expect(bad.contains { $0.hasPrefix("events.subscriptions[0].id:") })
        #expect(bad.contains { $0.hasPrefix("events.subscriptions[0].signing_secret:") })
        #expect(bad.contains { $0.hasPrefix("events.subscriptions[0].events:") })
        #expect(bad.contains { $0.hasPrefix("events.subscriptions[0].max_attempts:") })
        #expect(bad.contains { $0.hasPrefix("events.subscriptions[0].x:") })
        let twice = problems(
            #"{"subscriptions": [{"id": "a", "url_secret": "u", "signing_secret": "k", "events": ["*"]},"#
                + #"{"id": "a", "url_secret": "u", "signing_secret": "k", "events": ["*"]}]}"#)
        #expect(twice.contains { $0.hasPrefix("events.subscriptions[1].id:") })
    }
}
