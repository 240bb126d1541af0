internal import Glibc

/// The write side of the secrets store, used only by `draven secrets` (it needs the signing
/// key). Every change re-seals all entries with fresh nonces, bumps the generation, signs,
/// replaces the file atomically (temp file, fsync, rename, fsync dir) under an exclusive lock,
/// then the signed generation floor beside it (`GenerationFloor`), raises the rollback ratchet
/// and appends a `secrets.generation` audit record.
package enum SecretsAdmin {
    /// A decrypted, editable copy of the store.
    package struct Draft {
        package struct Value {
            var kind: SecretKind
            var version: UInt64
            var updated: Int64
            var value: SecretBytes
        }
        var values: [String: Value]
        var dek: SecretBytes
        var newDEK = false
        let now: Int64

        /// Sets (or replaces, with the next version) an entry.
        package mutating func set(_ name: String, kind: SecretKind, value: SecretBytes) throws(SecretsError) {
            guard SecretsFile.isValidName(name) else {
                throw .invalid("secret names are 1–128 of a-z 0-9 . _ / - and start with a letter or digit: \(name)")
            }
            guard value.count <= SecretsFile.maxEntryBytes else { throw .invalid("a secret value is at most 64 KiB") }
            guard value.count > 0 else { throw .invalid("the value of \(name) is empty") }
            values[name] = Value(kind: kind, version: (values[name]?.version ?? 0) + 1, updated: now, value: value)
        }

        package mutating func remove(_ name: String) throws(SecretsError) {
            guard values.removeValue(forKey: name) != nil else { throw .notFound(name: name) }
        }

        /// Replaces the data key: every entry is re-encrypted under a new one.
        package mutating func rotateDataKey() {
            dek = SecretsCrypto.randomKey(label: "data key")
            newDEK = true
        }

        package func value(_ name: String) throws(SecretsError) -> SecretBytes {
            guard let v = values[name] else { throw .notFound(name: name) }
            return v.value
        }
    }

    static let intakeEntry = "sys/intake"

    /// Creates a new store with its keys. Refuses when a store exists. Creates the master key
    /// file only when none is found.
    /// - Returns: the store id.
    @discardableResult
    package static func initialize(_ paths: SecretsPaths, db: Database, actor: String, now: Int64) throws -> String {
        guard access(paths.store, F_OK) != 0 else { throw SecretsError.invalid("\(paths.store) already exists") }
        if access(paths.kek, F_OK) != 0 {
            let kek = SecretsCrypto.randomKey(label: "master key")
            var text = kek.withUnsafeBytes { Array(("drvkek1:" + SecretsCrypto.base64(Array($0)) + "\n").utf8) }
            defer { Sodium.wipe(&text) }
            try KeyFiles.create(paths.kek, text, mode: 0o640)
        }
        let kek = try KeyFiles.secretKey(paths.kek, prefix: "drvkek1:", length: 32, what: "secrets master key")
        let (pk, sk) = SecretsCrypto.signingKeyPair()
        var skText = sk.withUnsafeBytes { Array(("drvsig1:" + SecretsCrypto.base64(Array($0)) + "\n").utf8) }
        defer { Sodium.wipe(&skText) }
        try KeyFiles.create(paths.signingKey, skText, mode: 0o600)
        let kid = KeyFiles.signerKID(pk)
        try KeyFiles.create(
            paths.publicKeys, Array("drvpub1:\(Hex.encode(kid)):\(SecretsCrypto.base64(pk))\n".utf8), mode: 0o644)

        let storeID = Sodium.randomBytes(16)
        let (_, intake) = SecretsCrypto.boxKeyPair()
        var draft = Draft(values: [:], dek: SecretsCrypto.randomKey(label: "data key"), newDEK: true, now: now)
        try draft.set(intakeEntry, kind: .opaque, value: intake)
        let file = SecretsFile(
            storeID: storeID, generation: 0, created: now, signerKID: kid, dekID: [], dekCheck: [], slots: [],
            entries: [], manifest: [])
        try write(
            paths, db: db, base: file, draft: draft, kek: kek, signingKey: sk, actor: actor, changed: ["(created)"])
        return Hex.encode(storeID)
    }

    /// Opens the store for writing, lets `change` edit a decrypted draft, and writes the result.
    /// - Returns: whatever `change` returns.
    package static func update<T>(
        _ paths: SecretsPaths, db: Database, actor: String, now: Int64,
        _ change: (inout Draft) throws -> (T, changed: [String])
    ) throws -> T {
        let lock = open(paths.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX) == 0 else { throw SecretsError.invalid("cannot lock \(paths.lock)") }
        defer { close(lock) }
        let store = try SecretsStore(paths, db: db)
        let signingKey = try Self.signingKey(paths)
        let kek = try KeyFiles.secretKey(paths.kek, prefix: "drvkek1:", length: 32, what: "secrets master key")
        var values: [String: Draft.Value] = [:]
        for entry in store.file.entries {
            values[entry.name] = Draft.Value(
                kind: entry.kind, version: entry.version, updated: entry.updated, value: try store.open(entry))
        }
        var draft = Draft(values: values, dek: try SecretsStore.unwrap(store.file, kek: kek), now: now)
        let (result, changed) = try change(&draft)
        try write(
            paths, db: db, base: store.file, draft: draft, kek: kek, signingKey: signingKey, actor: actor,
            changed: changed)
        return result
    }

    private static func write(
        _ paths: SecretsPaths, db: Database, base: SecretsFile, draft: Draft, kek: SecretBytes,
        signingKey: SecretBytes, actor: String, changed: [String]
    ) throws {
        let publicKey = signingKey.withUnsafeBytes { Array($0[32..<64]) }  // Ed25519 sk = seed ‖ pk
        var file = base
        file.generation += 1
        file.signerKID = KeyFiles.signerKID(publicKey)
        if draft.newDEK || file.dekID.isEmpty { file.dekID = Sodium.randomBytes(8) }
        file.dekCheck = SecretsFile.dekCheck(dek: draft.dek, storeID: file.storeID, dekID: file.dekID)
        let kid = KeyFiles.kekID(kek)
        let wrapped = draft.dek.withUnsafeBytes { dek in
            kek.withUnsafeBytes { SecretsCrypto.seal(dek, aad: file.wrapAAD(kekID: kid), key: $0) }
        }
        file.slots = [.init(type: 1, kid: kid, wrapped: wrapped)]
        file.entries = draft.values.keys.sorted().map { name in
            let v = draft.values[name]!
            let aad = file.aad(name: name, version: v.version, kind: v.kind)
            let record = v.value.withUnsafeBytes { value in
                draft.dek.withUnsafeBytes { SecretsCrypto.seal(value, aad: aad, key: $0) }
            }
            return SecretsFile.Entry(
                name: name, version: v.version, kind: v.kind, updated: v.updated, record: record[...])
        }
        let bytes = file.serialized(signingKey: signingKey)
        // Check the new file opens before it replaces the old one.
        let signers = SignerKeys(kid: file.signerKID, publicKey: publicKey)
        let check = try SecretsFile.parse(bytes, signers: signers)
        _ = try SecretsStore.unwrap(check, kek: kek)
        try replace(paths.store, with: bytes)
        // After the store: a crash between the two leaves a floor one generation behind, which
        // accepts the newer file.
        try replace(paths.floor, with: GenerationFloor(of: check).serialized(signingKey: signingKey), mode: 0o644)
        try db.immediate { tx in
            try SecretsStore.ratchet(tx.db, check, vouched: true)
            try Audit.record(
                tx, at: draft.now, actor: actor, action: "secrets.generation",
                subject: "secrets/\(Hex.encode(file.storeID))",
                detail: [
                    "generation": .int(Int64(file.generation)),
                    "manifest_hash": .string(Hex.encode(SecretsCrypto.hash(check.manifest))),
                    "changed": .array(changed.map(JSON.string)),
                ])
        }
    }

    /// Accepts the store file as it is at generation `generation` (restoring a backup): checks its
    /// signature, then writes the floor and the database record at its generation, even lower,
    /// and audits `secrets.accept_rollback`. Admin only (needs the signing key).
    package static func acceptRollback(
        _ paths: SecretsPaths, generation: UInt64, db: Database, actor: String,
        now: Int64
    ) throws {
        let lock = open(paths.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX) == 0 else { throw SecretsError.invalid("cannot lock \(paths.lock)") }
        defer { close(lock) }
        let signers = try KeyFiles.publicKeys(paths.publicKeys)
        let bytes = try KeyFiles.read(
            paths.store, forbidden: 0o022, maxBytes: SecretsFile.maxFileBytes,
            what: "secrets store")
        let file = try SecretsFile.parse(bytes, signers: signers)
        guard file.generation == generation else {
            throw SecretsError.invalid("the store file is at generation \(file.generation), not \(generation)")
        }
        let signingKey = try Self.signingKey(paths)
        try replace(paths.floor, with: GenerationFloor(of: file).serialized(signingKey: signingKey), mode: 0o644)
        try db.immediate { tx in
            try SecretsStore.resetRatchet(tx.db, file)
            try Audit.record(
                tx, at: now, actor: actor, action: "secrets.accept_rollback",
                subject: "secrets/\(Hex.encode(file.storeID))",
                detail: ["generation": .int(Int64(generation))])
        }
    }

    /// Atomically replaces `path`: write a temp file beside it, fsync, rename, fsync the directory.
    /// The admin's signing key (signs the store file and its generation floor).
    static func signingKey(_ paths: SecretsPaths) throws(SecretsError) -> SecretBytes {
        try KeyFiles.secretKey(paths.signingKey, prefix: "drvsig1:", length: 64, what: "secrets signing key")
    }

    static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o640) throws(SecretsError) {
        let tmp = path + ".tmp"
        unlink(tmp)
        try KeyFiles.create(tmp, bytes, mode: mode)
        guard rename(tmp, path) == 0 else { throw .invalid("cannot rename \(tmp) to \(path) (errno \(errno))") }
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

/// Sealing secrets for the store with only its public intake key (CI), and importing them.
///
/// Public key text: `drvpk1:<store id hex>:<base64 X25519 key>` (`draven secrets pubkey`).
/// Blob: `drvseal1:<name>:<base64 crypto_box_seal(payload)>`, payload =
/// `"drv-seal/v1\0" ‖ store_id ‖ u16 name_len ‖ name ‖ u64 not_after ‖ seal_id[16] ‖ value`.
/// Import checks the inner name and store id, the deadline, and that the seal id was never
/// imported before (so an old blob cannot roll a value back).
package enum SecretsIntake {
    package static let lifetime: Int64 = 7 * 86400

    package static func publicKeyText(_ paths: SecretsPaths, db: Database) throws -> String {
        let store = try SecretsStore(paths, db: db)
        let sk = try store.secret(SecretsAdmin.intakeEntry)
        return "drvpk1:\(store.storeID):\(SecretsCrypto.base64(SecretsCrypto.boxPublicKey(of: sk)))"
    }

    package static func seal(name: String, value: SecretBytes, publicKey text: String, now: Int64) throws(SecretsError)
        -> String
    {
        let parts = text.split(separator: ":")
        guard parts.count == 3, parts[0] == "drvpk1", let storeID = Hex.decode(String(parts[1])), storeID.count == 16,
            let pk = SecretsCrypto.base64Decode(Array(parts[2].utf8)), pk.count == 32
        else {
            throw .invalid("the public key must be drvpk1:<store id>:<base64>, as `draven secrets pubkey` prints it")
        }
        guard SecretsFile.isValidName(name) else { throw .invalid("invalid secret name \(name)") }
        var w = ByteWriter()
        w.raw(Array("drv-seal/v1\0".utf8))
        w.raw(storeID)
        w.string16(name)
        w.u64(UInt64(now + lifetime))
        w.raw(Sodium.randomBytes(16))
        var payload = w.bytes
        value.withUnsafeBytes { payload.append(contentsOf: $0) }
        defer { Sodium.wipe(&payload) }
        return "drvseal1:\(name):" + SecretsCrypto.base64(SecretsCrypto.sealAnonymously(payload, publicKey: pk))
    }

    /// Opens blobs and writes them into the store in one new generation.
    /// - Returns: the names imported.
    package static func importBlobs(_ blobs: [String], paths: SecretsPaths, db: Database, actor: String, now: Int64)
        throws -> [String]
    {
        try SecretsAdmin.update(paths, db: db, actor: actor, now: now) { draft in
            let intake = try draft.value(SecretsAdmin.intakeEntry)
            let pk = SecretsCrypto.boxPublicKey(of: intake)
            let storeID = try SecretsStore(paths, db: nil).file.storeID
            var names: [String] = []
            for blob in blobs {
                let parts = blob.split(separator: ":", maxSplits: 2)
                guard parts.count == 3, parts[0] == "drvseal1",
                    let box = SecretsCrypto.base64Decode(Array(parts[2].utf8)),
                    let opened = SecretsCrypto.openSealed(box, publicKey: pk, secretKey: intake)
                else { throw SecretsError.invalid("a blob is not a drvseal1 value sealed to this store's intake key") }
                let (name, sealID, valueStart) = try opened.withUnsafeBytes {
                    try parsePayload($0, storeID: storeID, outerName: String(parts[1]), now: now)
                }
                guard try db.scalar("SELECT 1 FROM secrets_seals WHERE seal_id = ?1", [.text(sealID)]) == nil else {
                    throw SecretsError.invalid("the sealed value for \(name) was already imported (replay)")
                }
                try db.run(
                    "INSERT INTO secrets_seals (seal_id, name, imported_at) VALUES (?1, ?2, ?3)",
                    [.text(sealID), .text(name), .int(now)])
                let value = opened.withUnsafeBytes {
                    SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[valueStart...]), label: name)
                }
                try draft.set(name, kind: .token, value: value)
                names.append(name)
            }
            return (names, names)
        }
    }

    /// Reads the header of an opened seal payload; returns the name, seal id and value offset.
    private static func parsePayload(
        _ raw: UnsafeRawBufferPointer, storeID: [UInt8], outerName: String,
        now: Int64
    ) throws(SecretsError) -> (String, String, Int) {
        var r = ByteReader(Array(raw.prefix(200))[...])
        guard Array(try r.take(12)) == Array("drv-seal/v1\0".utf8) else { throw .invalid("not a draven sealed value") }
        guard Array(try r.take(16)) == storeID else { throw .invalid("sealed for another store") }
        let name = try r.string16()
        let notAfter = try r.u64()
        let sealID = Hex.encode(try r.take(16))
        guard name == outerName else { throw .invalid("the blob's name does not match the sealed name") }
        guard UInt64(now) <= notAfter else { throw .invalid("the sealed value for \(name) expired") }
        return (name, sealID, r.index)
    }
}
