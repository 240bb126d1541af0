import Glibc
import Testing

@testable import DravenCore
@testable import DravenFunctions

// MARK: - POST /hooks/runner/log and GET /api/v1/jobs/{id}/log (test_logs.py)

extension RouteWorld {
    /// A log chunk for `job`, signed by the runner secret (or `secret`).
    func logChunk(
        _ job: Int64, seq: Int64, _ data: [UInt8], token: Int64? = nil, extra: JSONObject = [:],
        secret: String = RouteWorld.secrets["runner"]!, at timestamp: Int64? = nil
    ) throws -> Exchange {
        var body: JSONObject = [
            "job_id": .int(job), "fencing_token": .int(token ?? busyToken), "seq": .int(seq),
            "data": .string(SecretsCrypto.base64(data)),
        ]
        for (k, v) in extra.entries { body[k] = v }
        return try signed(
            Heartbeat.self, "/hooks/runner/log", JSON.object(body).serializedBytes(), secret: secret, at: timestamp)
    }

    func readLog(_ job: Int64, after: String? = nil, who: String = "alice") throws -> Exchange {
        try h.call(Status.self, "GET", "/api/v1/jobs/\(job)/log" + (after.map { "?after=\($0)" } ?? ""), token: who)
    }
}

@Suite struct LogChunkRefusalTests {
    /// `busy` with one chunk (seq 1, "first\n") stored.
    static func withFirst(_ send: @escaping @Sendable (RouteWorld) throws -> Exchange)
        -> @Sendable (RouteWorld) throws -> Exchange
    {
        { w in
            w.h.snapshots = false
            let first = try w.logChunk(w.busy, seq: 1, bytes("first\n"))
            guard first.status == 201 else { throw RouteWorld.SetUpFailed(description: first.body) }
            w.h.snapshots = true
            return try send(w)
        }
    }

    static func raw(_ body: String) -> @Sendable (RouteWorld) throws -> Exchange {
        { w in try w.signed(Heartbeat.self, "/hooks/runner/log", bytes(body)) }
    }

    static let cases: [Refused] = [
        Refused("bad signature", 401, "bad-signature", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x\n"), secret: "not-the-runner-secret")
        },
        Refused("old timestamp", 401, "bad-signature", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x\n"), at: w.h.now - 3600)
        },
        Refused("no signature", 401, "bad-signature", counted) { w in
            try w.h.call(
                Heartbeat.self, "POST", "/hooks/runner/log",
                json: ["job_id": .int(w.busy), "fencing_token": .int(w.busyToken), "seq": 1, "data": "eAo="])
        },
        Refused("unknown job", 401, "bad-signature", counted) { w in try w.logChunk(999_999, seq: 1, bytes("x\n")) },
        Refused("stale token", 409, "stale-fencing-token", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x\n"), token: w.busyToken + 1)
        },
        Refused("a job that has ended", 409, "conflict", counted) { w in
            try w.logChunk(w.done, seq: 1, bytes("x\n"), token: w.doneToken)
        },
        Refused(
            "other data under a used seq", 409, "conflict", counted,
            withFirst { w in
                try w.logChunk(w.busy, seq: 1, bytes("other\n"))
            }),
        Refused("a gap", 409, "conflict", counted, withFirst { w in try w.logChunk(w.busy, seq: 3, bytes("x\n")) }),
        Refused("not the first chunk", 409, "conflict", counted) { w in try w.logChunk(w.busy, seq: 2, bytes("x\n")) },
        Refused("over 64 KiB decoded", 413, "body-too-large", counted) { w in
            try w.logChunk(w.busy, seq: 1, [UInt8](repeating: 0x79, count: 65_537))
        },
        Refused(
            "a body over 96 KiB", 413, "body-too-large", counted,
            raw("{" + String(repeating: " ", count: 99_000) + "}")),
        Refused("empty data", 422, "invalid-field", counted) { w in try w.logChunk(w.busy, seq: 1, []) },
        Refused("not base64", 422, "invalid-field", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x"), extra: ["data": "not base64!"])
        },
        Refused("base64 without padding", 422, "invalid-field", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x"), extra: ["data": "eA"])
        },
        Refused("seq 0", 422, "invalid-field", counted) { w in try w.logChunk(w.busy, seq: 0, bytes("x\n")) },
        Refused("seq as a string", 422, "invalid-field", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x\n"), extra: ["seq": "1"])
        },
        Refused("an unknown field", 422, "invalid-field", counted) { w in
            try w.logChunk(w.busy, seq: 1, bytes("x\n"), extra: ["level": "info"])
        },
        Refused("not JSON", 400, "malformed-request", counted, raw("seq=1")),
        Refused("duplicate keys", 400, "malformed-request", counted, raw(#"{"seq": 1, "seq": 1}"#)),
        Refused("wrong method", 405, "method-not-allowed", counted) { w in
            try w.h.call(Heartbeat.self, "GET", "/hooks/runner/log")
        },
    ]

    @Test(arguments: cases) func refusalChangesNothingButItsCount(_ c: Refused) throws { try c.check() }

    /// A refusal of `who` about the job `busy`: one chained audit record.
    static func onBusy(_ who: String) -> @Sendable (RouteWorld) -> RefusalRecord {
        { w in .audited(actor: who, subject: "job/\(w.busy)") }
    }

    static let reads: [Refused] = [
        Refused("no token", 401, "unauthenticated", counted) { w in
            try w.h.call(Status.self, "GET", "/api/v1/jobs/\(w.busy)/log")
        },
        Refused("no read grant", 404, "not-found", onBusy("carol"), { w in try w.readLog(w.busy, who: "carol") }),
        Refused("unknown job", 404, "not-found", audited("alice")) { w in try w.readLog(999_999) },
        Refused("a negative after", 422, "invalid-field", onBusy("alice"), { w in try w.readLog(w.busy, after: "-1") }),
        Refused(
            "after not a number", 422, "invalid-field", onBusy("alice"), { w in try w.readLog(w.busy, after: "1e3") }),
    ]

    @Test(arguments: reads) func refusedReadsChangeNothingButTheirRecord(_ c: Refused) throws { try c.check() }

    @Test func aRepeatedChunkIsADuplicateAndChangesNothing() throws {
        let w = try RouteWorld()
        let first = try w.logChunk(w.busy, seq: 1, bytes("first line\n"))
        #expect(first.status == 201, "\(first.body)")
        #expect(first.json == ["job_id": .int(w.busy), "seq": 1, "bytes": 11, "cut": false])
        let again = try w.logChunk(w.busy, seq: 1, bytes("first line\n"))
        #expect(again.status == 200 && again.json?["status"] == "duplicate")
        again.expectUnchanged()
        let log = try w.readLog(w.busy)
        #expect(log.status == 200 && log.body == "first line\n")
        #expect(log.header("Draven-Log-Seq") == "1" && log.header("Draven-Log-Complete") == "false")
        #expect(log.header("Content-Type") == "text/plain; charset=utf-8")
    }

    @Test func theRunnerSecretIsMaskedOnReceiptInEachForm() throws {
        let w = try RouteWorld()
        let secret = RouteWorld.secrets["runner"]!
        let text = "a \(secret) b \(SecretsCrypto.base64(bytes(secret))) c\n"
        #expect(try w.logChunk(w.busy, seq: 1, bytes(text)).status == 201)
        #expect(try w.readLog(w.busy).body == "a *** b ***== c\n")  // base64's padding is not the secret
        let stored = w.h.store.db
        let blob = try stored.query("SELECT data FROM job_log_chunks", []) { $0.blob(0) }
        #expect(blob.count == 1 && !String(decoding: blob[0], as: UTF8.self).contains(secret))
    }
}

// MARK: - JobLogs: order, the cap, reads, pruning

/// A whole file's bytes (the log spool).
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw DravenError.notFound(what: path) }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
        guard n > 0 else { return out }
        out += buffer[..<n]
    }
}

@Suite struct JobLogsTests {
    /// A store with one running job (`busy`) of `RouteWorld`, and `JobLogs.append` called directly.
    func append(_ w: RouteWorld, _ seq: Int64, _ text: String, max: Int64 = 1 << 20) throws -> JobLogs.Outcome {
        try w.h.store.db.immediate { tx in
            try JobLogs.append(
                tx, job: w.busy, JobLogs.Chunk(seq: seq, data: bytes(text)), limits: .init(maxBytes: max),
                now: w.h.now)
        }
    }

    @Test func chunksAreReadBackInOrderAndAfterASeq() throws {
        let w = try RouteWorld()
        let big = String(repeating: "0123456789abcdef", count: 4096)  // compresses
        #expect(try append(w, 1, "one\n") == .stored(bytes: 4, cut: false))
        #expect(try append(w, 2, big) == .stored(bytes: 4 + Int64(big.utf8.count), cut: false))
        #expect(try append(w, 3, "three\n") == .stored(bytes: 10 + Int64(big.utf8.count), cut: false))
        let db = w.h.store.db
        #expect(try JobLogs.read(db, job: w.busy, after: 0).bytes == bytes("one\n" + big + "three\n"))
        #expect(try JobLogs.read(db, job: w.busy, after: 2).bytes == bytes("three\n"))
        #expect(try JobLogs.read(db, job: w.busy, after: 3).lastSeq == 3)
        #expect(try JobLogs.read(db, job: w.busy, after: 9).lastSeq == 9)
        let encodings = { try db.query("SELECT encoding FROM job_log_chunks ORDER BY seq", []) { $0.int(0) } }
        #expect(try encodings() == [0, 0, 0])  // stored as they came
        let stored = { try db.scalar("SELECT stored FROM job_logs") ?? 0 }
        #expect(try stored() == 10 + Int64(big.utf8.count))
        #expect(try JobLogs.compact(db) == 3)  // the sweep's step
        #expect(try encodings() == [2, 1, 2])  // short lines do not get smaller compressed: kept as they are
        #expect(try stored() < 1000)
        #expect(try JobLogs.compact(db) == 0)
        #expect(try JobLogs.read(db, job: w.busy, after: 0).bytes == bytes("one\n" + big + "three\n"))
        let tail = try JobLogs.tail(db, job: w.busy, bytes: 6)
        #expect(tail.bytes == bytes("three\n") && tail.partial)
        #expect(try JobLogs.tail(db, job: w.busy, bytes: 1 << 20).partial == false)
    }

    /// The request path writes a chunk's bytes to the job's spool file and a row naming them; the
    /// sweep moves them into the store and removes the file once the job has ended.
    @Test func chunksAreSpooledThenMovedIntoTheStoreAndTheSpoolRemoved() throws {
        let w = try RouteWorld()
        let db = w.h.store.db
        let file = w.h.store.paths.database + "-logs/\(w.busy)"
        func spooled() throws -> [[Int64?]] {
            try db.query("SELECT seq, length(data), spool_offset FROM job_log_chunks ORDER BY seq", []) {
                [$0.int(0), $0.int(1), $0.optionalInt(2)]
            }
        }
        #expect(try append(w, 1, "one\n") == .stored(bytes: 4, cut: false))
        // A request that died after writing its bytes, before its row committed: past the end, overwritten.
        let leftover = open(file, O_WRONLY)
        #expect(pwrite(leftover, "GARBAGE!", 8, 4) == 8)
        close(leftover)
        #expect(try append(w, 2, "two\n") == .stored(bytes: 8, cut: false))
        #expect(try spooled() == [[1, 0, 0], [2, 0, 4]])  // no bytes in the rows: offsets into the file
        #expect(try readFile(file) == bytes("one\ntwo\nAGE!"))
        #expect(try JobLogs.read(db, job: w.busy, after: 0).bytes == bytes("one\ntwo\n"))

        #expect(try JobLogs.compact(db) == 2)
        #expect(try spooled() == [[1, 4, nil], [2, 4, nil]])
        #expect(try JobLogs.releaseSpools(db).isEmpty)  // still running: its next chunk goes to the file
        #expect(try append(w, 3, "three\n") == .stored(bytes: 14, cut: false))
        try db.immediate { tx in
            try StateMachine.report(tx, job: w.busy, state: .succeeded, actor: "t", now: w.h.now)
        }
        #expect(try JobLogs.releaseSpools(db).isEmpty)  // chunk 3 is only in the file yet
        #expect(try JobLogs.compact(db) == 1)
        #expect(try JobLogs.releaseSpools(db) == [w.busy])
        #expect(access(file, F_OK) != 0)
        #expect(try JobLogs.read(db, job: w.busy, after: 0).bytes == bytes("one\ntwo\nthree\n"))
    }

    /// A spooled chunk whose bytes are gone (a power loss, a file removed by hand) reads as a line
    /// saying so, never as other bytes.
    @Test func aSpooledChunkWhoseBytesAreGoneReadsAsAMark() throws {
        let w = try RouteWorld()
        #expect(try append(w, 1, "one\n") == .stored(bytes: 4, cut: false))
        #expect(try append(w, 2, "two\n") == .stored(bytes: 8, cut: false))
        #expect(truncate(w.h.store.paths.database + "-logs/\(w.busy)", 6) == 0)
        let read = try JobLogs.read(w.h.store.db, job: w.busy, after: 0)
        #expect(read.bytes == bytes("one\n") + JobLogs.missingMark(seq: 2, size: 4))
    }

    @Test func theCapCutsTheLogMarksItAndCountsTheRest() throws {
        let w = try RouteWorld()
        #expect(try append(w, 1, "12345\n", max: 10) == .stored(bytes: 6, cut: false))
        let cut = try append(w, 2, "abcdefgh\n", max: 10)
        let mark = JobLogs.cutMark("it reached the cap of 10 bytes per job (logs.max_job_bytes)")
        #expect(cut == .stored(bytes: 6 + 5 + Int64(mark.count), cut: true))
        #expect(try append(w, 3, "later\n", max: 10) == .dropped)
        #expect(try append(w, 3, "later\n", max: 10) == .duplicate)  // the newest may be repeated
        #expect(throws: DravenError.self) { try append(w, 2, "abcdefgh!\n", max: 10) }
        let read = try JobLogs.read(w.h.store.db, job: w.busy, after: 0)
        #expect(read.bytes == bytes("12345\nabcd\n") + mark)
        #expect(read.cut && read.lastSeq == 3 && read.dropped == 5 + 6)
    }

    @Test func sweepPrunesEndedJobsLogsAfterTheRetention() throws {
        let w = try RouteWorld()
        let db = w.h.store.db
        #expect(try append(w, 1, "kept\n") == .stored(bytes: 5, cut: false))
        let later = w.h.now + JobLogs.defaultRetention + 1
        // Still running: kept, however old.
        #expect(try JobLogs.prune(db, now: later).isEmpty)
        try db.immediate { tx in
            try StateMachine.transition(tx, job: w.busy, to: .cancelled, actor: "t", now: w.h.now)
        }
        #expect(try JobLogs.prune(db, now: w.h.now + 60).isEmpty)
        #expect(try JobLogs.prune(db, now: later) == [w.busy])
        #expect(try JobLogs.prune(db, now: later).isEmpty)
        let read = try JobLogs.read(db, job: w.busy, after: 0)
        #expect(read.bytes.isEmpty && read.prunedAt == later)
        #expect(try db.scalar("SELECT count(*) FROM job_log_chunks") == 0)
    }

    @Test func theConfigurationSetsTheCapAndTheRetention() throws {
        func validate(_ logs: String) throws -> Config {
            try Config.validate(try JSON.parse(Array("{\"logs\": \(logs)}".utf8)), file: "t.json")
        }
        let c = try validate(#"{"max_job_bytes": "2MiB", "retention": "7d"}"#)
        #expect(c.logMaxJobBytes == 2 << 20 && c.logRetention == 7 * 86_400)
        #expect(try validate(#"{"max_job_bytes": 100000}"#).logMaxJobBytes == 100_000)
        for bad in [
            #"{"max_job_bytes": "1KiB"}"#, #"{"max_job_bytes": "lots"}"#, #"{"max_job_bytes": "2TiB"}"#,
            #"{"retention": "10m"}"#, #"{"retention": "forever"}"#, #"{"keep": 1}"#,
        ] {
            #expect(throws: ConfigError.self, "\(bad)") { try validate(bad) }
        }
    }
}

// MARK: - the console's job page

@Suite struct ConsoleLogTests {
    @Test func theJobPageShowsTheEndOfTheLogEscapedAndFollowsIt() throws {
        let w = try ConsoleWorld()
        let job = try w.deploy("alice", "app", "demo", "main", expect: "dispatching")
        let pages = ConsolePagesTests()
        let alice = try pages.signIn(w, "alice")
        let empty = try pages.get(w, alice, "/ui/jobs/\(job)")
        #expect(empty.body.contains("No output from the runner yet."))
        let etag = try #require(empty.header("ETag"))
        let text = "<script>alert(1)</script> \u{1b}[32mok\u{1b}[0m\n"
        let x = try w.signed(
            Heartbeat.self, "/hooks/runner/log",
            [
                "job_id": .int(job), "fencing_token": .int(try w.token(job)), "seq": 1,
                "data": .string(SecretsCrypto.base64(bytes(text))),
            ])
        #expect(x.status == 201, "\(x.body)")
        // A new chunk changes the page's ETag (chunks write no job event).
        let page = try w.h.call(
            Console.self, "GET", "/ui/jobs/\(job)", headers: ["Cookie": alice.cookie, "If-None-Match": etag])
        #expect(page.status == 200)
        #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; ok\n</pre>"))
        #expect(!page.body.contains("<script>alert"))
        #expect(page.body.contains("<a href=\"/ui/jobs/\(job)/log\">full log</a>"))
        let full = try pages.get(w, alice, "/ui/jobs/\(job)/log")
        #expect(full.status == 200 && full.body == text && full.header("Content-Type") == "text/plain; charset=utf-8")
        // olga may not read app: no such job for her.
        let olga = try pages.signIn(w, "olga")
        #expect(try pages.get(w, olga, "/ui/jobs/\(job)/log").status == 404)
    }

    @Test func aLongLogShowsOnlyItsEndAndThePageStaysSmall() throws {
        let line = String(repeating: "\"<&>'", count: 40)  // escapes to six times its size
        let lines = (0..<2000).map { "\($0) \(line)\n" }
        let (shown, cut) = JobPage.tailLines(lines.joined(), budget: JobPage.logHTMLBudget)
        #expect(cut && shown.hasSuffix(lines.last!))
        #expect(HTML.escape(shown).utf8.count <= JobPage.logHTMLBudget + 1)
        let (one, oneCut) = JobPage.tailLines(String(repeating: "<", count: 100_000), budget: 1000)
        #expect(oneCut && HTML.escape(one).utf8.count <= 1001)
    }
}

// MARK: - the fast paths a log chunk takes

@Suite struct LogFastPathTests {
    @Test func base64DecodesWhatLibsodiumDecodesAndRefusesTheRest() throws {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 2, 3, 4, 5, 63, 64, 65, 1000] {
            let raw = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let text = SecretsCrypto.base64(raw)
            #expect(Base64.decode(text) == raw)
            #expect(SecretsCrypto.base64Decode(text.utf8) == raw)
        }
        let refused = [
            "eA", "eA=", "eA===", "e A=", "eA==\n", "eB==", "eAB=", "====", "eA=A", "=eAA", "eA\u{e9}=", "ab-_",
        ]
        for bad in refused {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func theStringScanFindsEverySpecialByteInLongStrings() throws {
        let plain = String(repeating: "abcdefgh", count: 20)
        #expect(try JSON.parse(bytes("\"\(plain)\"")).stringValue == plain)
        for (k, special) in ["\\\"", "\\n", "é", "\u{7f}"].enumerated() {
            let text = String(plain.prefix(37 + k)) + special + String(plain.prefix(50))
            let parsed = try JSON.parse(bytes("[\"\(text)\"]"))
            #expect(parsed.arrayValue?.first?.stringValue?.utf8.count ?? 0 > 80, "\(special)")
        }
        for control in [0x00, 0x01, 0x1f] as [UInt8] {
            var raw = bytes("\"" + plain)
            raw[45] = control
            #expect(throws: JSONParseError.self) { try JSON.parse(raw + bytes("\"")) }
        }
        var invalid = bytes("\"" + plain + "\"")
        invalid[60] = 0xff
        #expect(throws: JSONParseError.self) { try JSON.parse(invalid) }
    }

    @Test func hmacOnTheSHAExtensionsIsLibsodiumsHMAC() throws {
        // RFC 4231 test case 2, then every length across the block boundaries, keys short and long.
        let rfc = Sodium.hmacSHA256(
            key: SecretBytes(copying: bytes("Jefe"), label: "t"), message: bytes("what do ya want for nothing?"))
        #expect(Hex.encode(rfc) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        var rng = SystemRandomNumberGenerator()
        let lengths = Array(0...200) + [1000, 4095, 65_536, 87_440]
        for keyLength in [1, 10, 32, 64, 65, 200] {
            let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for n in lengths {
                let message = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let mac = Sodium.hmacSHA256(key: SecretBytes(copying: key, label: "t"), message: message)
                #expect(mac == Sodium.hmacSHA256Portable(key: key, message: message), "key \(keyLength), \(n) bytes")
                let cut = n / 3
                let parts = Sodium.hmacSHA256(
                    key: SecretBytes(copying: key, label: "t"), prefix: Array(message[..<cut]),
                    message: Array(message[cut...]))
                #expect(parts == mac, "in two parts: key \(keyLength), \(n) bytes")
            }
        }
    }

    @Test func maskingFindsEveryOccurrence() throws {
        let r = Redactor([SecretBytes(copying: bytes("s3cret"), label: "t")])
        #expect(r.mask(bytes("s3cret"), with: bytes("*")) == bytes("*"))
        #expect(r.mask(bytes("as3crets3cretb s3cre"), with: bytes("*")) == bytes("a**b s3cre"))
        #expect(r.mask(bytes("nothing"), with: bytes("*")) == bytes("nothing"))
        #expect(r.clean("token s3cret here") == "token [redacted] here")
    }
}
