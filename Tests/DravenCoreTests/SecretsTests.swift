import Glibc
import Testing

@testable import DravenCore

@Suite struct SecretsTests {
    static let canary = "canary-7f3a9c1e-SECRET-VALUE"

    /// A store with a fresh secrets file holding `github-token` = canary.
    static func store() throws -> (TestStore, SecretsPaths) {
        let store = try TestStore()
        let paths = SecretsPaths(store.paths)
        try SecretsAdmin.initialize(paths, db: store.db, actor: "test", now: store.now)
        try set(paths, store, "github-token", canary)
        return (store, paths)
    }

    static func set(
        _ paths: SecretsPaths, _ store: TestStore, _ name: String, _ value: String, kind: SecretKind = .token
    ) throws {
        try SecretsAdmin.update(paths, db: store.db, actor: "test", now: store.now) { draft in
            try draft.set(name, kind: kind, value: SecretBytes(copying: Array(value.utf8), label: name))
            return ((), [name])
        }
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        try KeyFiles.read(path, forbidden: 0, maxBytes: 1 << 22, what: "file")
    }

    static func write(_ path: String, _ bytes: [UInt8]) throws {
        unlink(path)
        try KeyFiles.create(path, bytes, mode: 0o640)
    }

    @Test func roundTrip() throws {
        let (store, paths) = try Self.store()
        let reader = try SecretsStore(paths, db: store.db)
        #expect(try reader.secret("github-token").utf8() == Self.canary)
        #expect(reader.entries.map(\.name) == ["github-token", "sys/intake"])
        #expect(reader.generation == 2)
        #expect("\(try reader.secret("github-token"))" == "<redacted github-token>")
        #expect(throws: SecretsError.notFound(name: "nope")) { try reader.secret("nope") }
        #expect(try store.count("audit", "action = 'secrets.generation'") == 2)
    }

    @Test func setBumpsTheVersionAndRmRemoves() throws {
        let (store, paths) = try Self.store()
        try Self.set(paths, store, "github-token", "second")
        var reader = try SecretsStore(paths, db: store.db)
        #expect(reader.entries.first { $0.name == "github-token" }?.version == 2)
        #expect(try reader.secret("github-token").utf8() == "second")
        try SecretsAdmin.update(paths, db: store.db, actor: "t", now: store.now) { draft in
            (try draft.remove("github-token"), ["github-token"])
        }
        reader = try SecretsStore(paths, db: store.db)
        #expect(throws: SecretsError.notFound(name: "github-token")) { try reader.secret("github-token") }
    }

    @Test func theFileHoldsNoPlaintext() throws {
        let (store, paths) = try Self.store()
        try Self.set(paths, store, "smtp-password", "another-" + Self.canary)
        let file = try Self.bytes(paths.store)
        #expect(!file.contains(subsequence: Array(Self.canary.utf8)))
        #expect(!file.contains(subsequence: Array("canary".utf8)))
    }

    @Test func rotatingTheDataKeyReSealsEverything() throws {
        let (store, paths) = try Self.store()
        let before = try Self.bytes(paths.store)
        let dekID = try SecretsStore(paths, db: store.db).file.dekID
        try SecretsAdmin.update(paths, db: store.db, actor: "t", now: store.now) { draft in
            (draft.rotateDataKey(), ["(data key)"])
        }
        let reader = try SecretsStore(paths, db: store.db)
        #expect(reader.file.dekID != dekID)
        #expect(try reader.secret("github-token").utf8() == Self.canary)
        #expect(try Self.bytes(paths.store) != before)
    }

    @Test func anEditedByteAnywhereIsRefused() throws {
        let (store, paths) = try Self.store()
        let good = try Self.bytes(paths.store)
        // Every byte of the header, a sample of the rest: each flip must be refused.
        let positions = Array(0..<120) + stride(from: 120, to: good.count, by: 7).map { $0 }
        for position in positions {
            var bad = good
            bad[position] ^= 0x01
            try Self.write(paths.store, bad)
            let failure = #expect(throws: SecretsError.self, "flipping byte \(position) went unnoticed") {
                try SecretsStore(paths, db: store.db).verifyAll()
            }
            switch failure {
            case .tampered?, .wrongKey?: break
            default: Issue.record("byte \(position): unexpected \(String(describing: failure))")
            }
        }
        try Self.write(paths.store, good)
        #expect(try SecretsStore(paths, db: store.db).secret("github-token").utf8() == Self.canary)
    }

    @Test func aReaderNoticesTamperingOfTheRecordItReads() throws {
        let (store, paths) = try Self.store()
        var bytes = try Self.bytes(paths.store)
        let file = try SecretsStore(paths, db: store.db).file
        let record = try #require(file.entries.first { $0.name == "github-token" }).record
        bytes[record.startIndex + 30] ^= 0x80
        try Self.write(paths.store, bytes)
        let reader = try SecretsStore(paths, db: store.db)
        #expect(throws: SecretsError.tampered("record of github-token was changed")) {
            try reader.secret("github-token")
        }
    }

    @Test func truncatedOrExtendedFilesAreRefused() throws {
        let (store, paths) = try Self.store()
        let good = try Self.bytes(paths.store)
        for bad in [Array(good.dropLast()), good + [0], Array(good.prefix(40)), []] {
            try Self.write(paths.store, bad)
            #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db) }
        }
    }

    @Test func anOlderFileIsRefusedAsRollback() throws {
        let (store, paths) = try Self.store()
        let old = try Self.bytes(paths.store)
        try Self.set(paths, store, "github-token", "rotated")
        _ = try SecretsStore(paths, db: store.db)  // a reader sees generation 3
        try Self.write(paths.store, old)
        #expect(throws: SecretsError.rollback(file: 2, seen: 3)) { try SecretsStore(paths, db: store.db) }
    }

    @Test func deletingTheGenerationRecordDoesNotLetAnOlderFileBack() throws {
        let (store, paths) = try Self.store()
        let old = try Self.bytes(paths.store)
        try Self.set(paths, store, "github-token", "rotated")
        try store.db.run("DELETE FROM secrets_state")
        try Self.write(paths.store, old)
        #expect(throws: SecretsError.rollback(file: 2, seen: 3)) { try SecretsStore(paths, db: store.db) }
        #expect(try store.count("secrets_state") == 0)  // not re-seeded at the old generation
    }

    @Test func noRecordAndNoFloorIsRefusedNotReSeeded() throws {
        let (store, paths) = try Self.store()
        try store.db.run("DELETE FROM secrets_state")
        unlink(paths.floor)
        #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db) }
        #expect(try store.count("secrets_state") == 0)
        try SecretsAdmin.acceptRollback(paths, generation: 2, db: store.db, actor: "test", now: store.now)
        #expect(try SecretsStore(paths, db: store.db).generation == 2)
    }

    @Test func theFloorReSeedsAMissingRecordAndAcceptRollbackLowersBoth() throws {
        let (store, paths) = try Self.store()
        let old = try Self.bytes(paths.store)
        try store.db.run("DELETE FROM secrets_state")
        _ = try SecretsStore(paths, db: store.db)  // the floor vouches for generation 2
        #expect(try store.count("secrets_state", "max_generation = 2") == 1)
        try Self.set(paths, store, "github-token", "rotated")
        try Self.write(paths.store, old)
        #expect(throws: SecretsError.rollback(file: 2, seen: 3)) { try SecretsStore(paths, db: store.db) }
        #expect(throws: SecretsError.self) {
            try SecretsAdmin.acceptRollback(paths, generation: 3, db: store.db, actor: "test", now: store.now)
        }
        try SecretsAdmin.acceptRollback(paths, generation: 2, db: store.db, actor: "test", now: store.now)
        #expect(try SecretsStore(paths, db: store.db).secret("github-token").utf8() == Self.canary)
        #expect(try store.count("audit", "action = 'secrets.accept_rollback'") == 1)
    }

    @Test func aForgedFloorIsRefused() throws {
        let (store, paths) = try Self.store()
        var floor = try #require(try GenerationFloor.read(paths.floor))
        floor.generation = 9
        try Self.write(paths.floor, floor.body + floor.signature)
        #expect(throws: SecretsError.tampered("the generation floor's signature does not verify")) {
            try SecretsStore(paths, db: store.db)
        }
    }

    @Test func aDifferentFileWithTheSameGenerationIsRefused() throws {
        let (store, paths) = try Self.store()
        let generation2 = try SecretsStore(paths, db: store.db).file
        // Re-sign generation 2 with different content (as a thief of the signing key could).
        let signingKey = try KeyFiles.secretKey(paths.signingKey, prefix: "drvsig1:", length: 64, what: "k")
        var forged = generation2
        forged.created += 1
        try Self.write(paths.store, forged.serialized(signingKey: signingKey))
        #expect(throws: SecretsError.equivocation(generation: 2)) { try SecretsStore(paths, db: store.db) }
    }

    @Test func aFileSignedByAnotherKeyIsRefused() throws {
        let (store, paths) = try Self.store()
        var file = try SecretsStore(paths, db: store.db).file
        let (pk, sk) = SecretsCrypto.signingKeyPair()
        file.signerKID = KeyFiles.signerKID(pk)
        file.generation += 5
        try Self.write(paths.store, file.serialized(signingKey: sk))
        #expect(throws: SecretsError.tampered("signed by an unknown key \(Hex.encode(file.signerKID))")) {
            try SecretsStore(paths, db: store.db)
        }
        // Same key id forged over the pinned one: the signature itself fails.
        file.signerKID = try KeyFiles.publicKeys(paths.publicKeys).kids.first!
        try Self.write(paths.store, file.serialized(signingKey: sk))
        #expect(throws: SecretsError.tampered("the signature does not verify")) {
            try SecretsStore(paths, db: store.db)
        }
    }

    @Test func anEntryMovedToAnotherNameDoesNotDecrypt() throws {
        let (store, paths) = try Self.store()
        try Self.set(paths, store, "gitlab-token", "gitlab-value")
        var file = try SecretsStore(paths, db: store.db).file
        let signingKey = try KeyFiles.secretKey(paths.signingKey, prefix: "drvsig1:", length: 64, what: "k")
        // Swap the two records (validly signed, as by someone holding the signing key).
        let a = file.entries.firstIndex { $0.name == "github-token" }!
        let b = file.entries.firstIndex { $0.name == "gitlab-token" }!
        (file.entries[a].record, file.entries[b].record) = (file.entries[b].record, file.entries[a].record)
        file.generation += 1
        try Self.write(paths.store, file.serialized(signingKey: signingKey))
        let reader = try SecretsStore(paths, db: store.db)
        #expect(throws: SecretsError.tampered("entry github-token does not decrypt under its name, version and kind")) {
            try reader.secret("github-token")
        }
        // A changed kind or version is refused the same way.
        var file2 = try SecretsStore(paths, db: store.db).file
        let i = file2.entries.firstIndex { $0.name == "sys/intake" }!
        file2.entries[i].kind = .token
        file2.generation += 1
        try Self.write(paths.store, file2.serialized(signingKey: signingKey))
        #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db).secret("sys/intake") }
    }

    @Test func theWrongMasterKeyIsNamedAsSuch() throws {
        let (store, paths) = try Self.store()
        unlink(paths.kek)
        let other = SecretsCrypto.randomKey(label: "k")
        try KeyFiles.create(
            paths.kek, Array(("drvkek1:" + other.withUnsafeBytes { SecretsCrypto.base64(Array($0)) } + "\n").utf8),
            mode: 0o600)
        let error = #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db) }
        guard case .wrongKey? = error else {
            Issue.record("expected wrongKey, got \(String(describing: error))")
            return
        }
    }

    @Test(arguments: [mode_t(0o644), 0o604, 0o660, 0o622, 0o666])
    func aMasterKeyFileOthersCanReadOrWriteIsRefused(_ mode: mode_t) throws {
        let (store, paths) = try Self.store()
        chmod(paths.kek, mode)
        let error = #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db) }
        guard case .badPermissions(let path, _)? = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(path == paths.kek)
    }

    @Test func aGroupWritableStoreIsRefused() throws {
        let (store, paths) = try Self.store()
        chmod(paths.store, 0o662)
        #expect(throws: SecretsError.self) { try SecretsStore(paths, db: store.db) }
    }

    @Test func ciSealingRoundTripAndReplay() throws {
        let (store, paths) = try Self.store()
        let publicKey = try SecretsIntake.publicKeyText(paths, db: store.db)
        let value = SecretBytes(copying: Array("from-ci".utf8), label: "v")
        let blob = try SecretsIntake.seal(name: "ci-token", value: value, publicKey: publicKey, now: store.now)
        #expect(!blob.contains("from-ci"))
        #expect(
            try SecretsIntake.importBlobs([blob], paths: paths, db: store.db, actor: "t", now: store.now) == [
                "ci-token"
            ])
        #expect(try SecretsStore(paths, db: store.db).secret("ci-token").utf8() == "from-ci")
        #expect(throws: SecretsError.self) {
            try SecretsIntake.importBlobs([blob], paths: paths, db: store.db, actor: "t", now: store.now)
        }
        let renamed = blob.replacing("drvseal1:ci-token:", with: "drvseal1:github-token:")
        #expect(throws: SecretsError.self) {
            try SecretsIntake.importBlobs([renamed], paths: paths, db: store.db, actor: "t", now: store.now)
        }
        let late = try SecretsIntake.seal(name: "ci-token", value: value, publicKey: publicKey, now: store.now)
        #expect(throws: SecretsError.self) {
            try SecretsIntake.importBlobs(
                [late], paths: paths, db: store.db, actor: "t", now: store.now + SecretsIntake.lifetime + 1)
        }
    }
}

@Suite struct SecretBytesTests {
    @Test func theArenaHandsOutAlignedSlotsUntilFullAndZeroesThemOnRelease() throws {
        let arena = SecureArena(size: 96)
        let a = try #require(arena.allocate(20))
        let b = try #require(arena.allocate(33))
        #expect(b - a == 32)  // 16-byte aligned
        #expect(Int(bitPattern: a) % 16 == 0)
        #expect(arena.allocate(32) == nil)  // 32 + 48 + 32 > 96
        #expect(arena.allocate(2048) == nil)  // large values never come from the arena
        a.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 20)
        #expect(arena.release(a, count: 20))
        #expect(UnsafeRawBufferPointer(start: a, count: 20).allSatisfy { $0 == 0 })
        let elsewhere = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        defer { elsewhere.deallocate() }
        #expect(!arena.owns(elsewhere) && !arena.release(elsewhere, count: 8))
    }

    @Test func valuesRoundTripWhereverTheyLive() {
        let small = SecretBytes(copying: Array(repeating: 1, count: 33), label: "small")
        let big = SecretBytes(copying: Array(repeating: 7, count: 4096), label: "big")
        #expect(small.withUnsafeBytes { Array($0) } == Array(repeating: 1, count: 33))
        #expect(big.withUnsafeBytes { $0.count == 4096 && $0.allSatisfy { $0 == 7 } })
        #expect("\(small)" == "<redacted small>")
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
