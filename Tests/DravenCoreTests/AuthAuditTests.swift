import Testing

@testable import DravenCore

@Suite struct TokenTests {
    @Test func aTokenVerifiesOnlyAsIssuedAndUntilRevoked() throws {
        let store = try TestStore()
        let key = try Tokens.loadKey(store.paths)
        let created = try store.db.immediate { tx in
            try Tokens.create(tx, person: "carol", name: "ci", key: key, now: store.now)
        }
        #expect(created.plaintext.hasPrefix("drv_\(created.publicID)_"))
        let principal = try #require(try Tokens.verify(store.db, token: created.plaintext, key: key))
        #expect(principal.handle == "carol")
        // One character off, another key, a prefix, garbage: all refused.
        var tampered = Array(created.plaintext)
        tampered[tampered.count - 1] = tampered.last == "A" ? "B" : "A"
        #expect(try Tokens.verify(store.db, token: String(tampered), key: key) == nil)
        #expect(try Tokens.verify(store.db, token: created.plaintext, key: Sodium.randomBytes(32)) == nil)
        #expect(try Tokens.verify(store.db, token: "drv_\(created.publicID)_", key: key) == nil)
        #expect(try Tokens.verify(store.db, token: "hunter2", key: key) == nil)
        try store.db.run("UPDATE api_tokens SET revoked_at = 1")
        #expect(try Tokens.verify(store.db, token: created.plaintext, key: key) == nil)
    }

    @Test func onlyAKeyedHashIsStored() throws {
        let store = try TestStore()
        let key = try Tokens.loadKey(store.paths)
        let created = try store.db.immediate { tx in
            try Tokens.create(tx, person: "alice", name: "", key: key, now: store.now)
        }
        let stored = try #require(try store.db.first("SELECT hash FROM api_tokens") { $0.blob(0) })
        #expect(stored == Sodium.keyedHash(created.plaintext.utf8, key: key))
        #expect(stored != Sodium.keyedHash(created.plaintext.utf8, key: Sodium.randomBytes(32)))
    }

    @Test func disabledPeopleLoseAccess() throws {
        let store = try TestStore()
        let key = try Tokens.loadKey(store.paths)
        let created = try store.db.immediate { tx in
            try Tokens.create(tx, person: "bob", name: "", key: key, now: store.now)
        }
        try store.db.run("UPDATE people SET disabled = 1 WHERE handle = 'bob'")
        #expect(try Tokens.verify(store.db, token: created.plaintext, key: key) == nil)
    }

    @Test func constantTimeEquality() {
        #expect(Sodium.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Sodium.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Sodium.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(Sodium.constantTimeEquals([], []))
    }
}

@Suite struct AuditTests {
    @Test func theChainDetectsEditsDeletionsAndReordering() throws {
        let store = try TestStore()
        for i in 0..<5 {
            try store.db.immediate { tx in
                try Audit.record(tx, at: store.now + Int64(i), actor: "a", action: "x", subject: "s\(i)")
            }
        }
        #expect(try Audit.verify(store.db) == nil)
        try store.db.run("UPDATE audit SET subject = 'other' WHERE id = 3")
        #expect(try Audit.verify(store.db) == 3)
        try store.db.run("UPDATE audit SET subject = 's1' WHERE id = 3")
        #expect(try Audit.verify(store.db) == nil)
        try store.db.run("DELETE FROM audit WHERE id = 4")
        #expect(try Audit.verify(store.db) == 5)
    }

    @Test func fieldsCannotBeShiftedBetweenColumns() {
        let a = Audit.digest(
            prev: Audit.genesis, at: 1, actor: "ab", action: "c", subject: "", outcome: "ok", detail: "{}")
        let b = Audit.digest(
            prev: Audit.genesis, at: 1, actor: "a", action: "bc", subject: "", outcome: "ok", detail: "{}")
        #expect(a != b)
    }
}

@Suite struct TimeAndHexTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
        (1_795_487_481, "2026-11-24T02:31:21Z"), (-1, "1969-12-31T23:59:59Z"),
    ])
    func rfc3339(_ seconds: Int64, _ text: String) {
        #expect(Clock.rfc3339(seconds) == text)
    }

    @Test func hexRoundTrip() {
        let bytes: [UInt8] = [0, 1, 0xab, 0xff]
        #expect(Hex.encode(bytes) == "0001abff")
        #expect(Hex.decode("0001ABff") == bytes)
        #expect(Hex.decode("0g") == nil)
        #expect(Hex.decode("abc") == nil)
    }
}
