/// The read side of the secrets store, as every function uses it: verify the file's signature
/// against the pinned public key, check it against the highest generation this installation
/// has seen (SQLite `secrets_state`), unwrap the data key with the master key, and decrypt
/// single entries on demand. Holds no signing key. See `SecretsFile` for the format and
/// `GenerationFloor` for the admin-signed lower bound that the database cannot lower.
package final class SecretsStore {
    let file: SecretsFile
    private let dek: SecretBytes

    package var storeID: String { Hex.encode(file.storeID) }
    package var generation: UInt64 { file.generation }

    /// Opens the store.
    /// - Parameter db: the state database, for the rollback ratchet (raise-only).
    /// - Throws: `SecretsError` — `.tampered`, `.rollback`, `.equivocation`, `.wrongKey`,
    ///   `.badPermissions`, `.missing`, `.unanchored`.
    package init(_ paths: SecretsPaths, db: Database?) throws {
        let signers = try KeyFiles.publicKeys(paths.publicKeys)
        let bytes = try KeyFiles.read(
            paths.store, forbidden: 0o022, maxBytes: SecretsFile.maxFileBytes, what: "secrets store")
        let file = try SecretsFile.parse(bytes, signers: signers)
        let floor = try GenerationFloor.read(paths.floor)
        try floor?.check(file, signers: signers)
        if let db { try Self.ratchet(db, file, vouched: floor != nil) }
        let kek = try KeyFiles.secretKey(paths.kek, prefix: "drvkek1:", length: 32, what: "secrets master key")
        self.dek = try Self.unwrap(file, kek: kek)
        self.file = file
    }

    init(file: SecretsFile, dek: SecretBytes) {
        self.file = file
        self.dek = dek
    }

    static func unwrap(_ file: SecretsFile, kek: SecretBytes) throws(SecretsError) -> SecretBytes {
        let kid = KeyFiles.kekID(kek)
        guard let slot = file.slots.first(where: { $0.type == 1 && $0.kid == kid }) else {
            throw .wrongKey("no slot for master key \(Hex.encode(kid))")
        }
        guard
            let dek = kek.withUnsafeBytes({
                SecretsCrypto.open(slot.wrapped[...], aad: file.wrapAAD(kekID: kid), key: $0, label: "data key")
            }),
            dek.count == 32
        else { throw .wrongKey("the data key does not unwrap") }
        guard
            Sodium.constantTimeEquals(
                SecretsFile.dekCheck(dek: dek, storeID: file.storeID, dekID: file.dekID), file.dekCheck)
        else {
            throw .wrongKey("the data key does not match its commitment")
        }
        return dek
    }

    /// Refuses a file older than the newest seen, or a different file with the same generation;
    /// records a newer one. With no record for the store, seeds one only when the generation
    /// floor (`vouched`, already checked) accepts the file: a deleted row never re-seeds silently.
    static func ratchet(_ db: Database, _ file: SecretsFile, vouched: Bool) throws {
        let id = Hex.encode(file.storeID)
        let hash = Hex.encode(SecretsCrypto.hash(file.manifest))
        let seen = try db.first(
            "SELECT max_generation, manifest_hash FROM secrets_state WHERE store_id = ?1", [.text(id)]
        ) {
            (UInt64($0.int(0)), $0.text(1))
        }
        if let seen {
            if file.generation < seen.0 { throw SecretsError.rollback(file: file.generation, seen: seen.0) }
            if file.generation == seen.0 {
                guard seen.1 == hash else { throw SecretsError.equivocation(generation: file.generation) }
                return
            }
        } else if !vouched {
            throw SecretsError.unanchored(
                "no generation record for store \(id) in the database and no "
                    + "generation floor beside the file (restored? "
                    + "`draven secrets verify --accept-rollback GEN`)")
        }
        try db.run(
            """
            INSERT INTO secrets_state (store_id, max_generation, manifest_hash, seen_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (store_id) DO UPDATE SET max_generation = excluded.max_generation, manifest_hash =
            excluded.manifest_hash,
                seen_at = excluded.seen_at WHERE secrets_state.max_generation < excluded.max_generation
            """, [.text(id), .int(Int64(file.generation)), .text(hash), .int(Clock.now())])
    }

    /// Sets the generation record to `file`'s, even lower (`draven secrets verify --accept-rollback`).
    static func resetRatchet(_ db: Database, _ file: SecretsFile) throws {
        try db.run(
            """
            INSERT INTO secrets_state (store_id, max_generation, manifest_hash, seen_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (store_id) DO UPDATE SET max_generation = excluded.max_generation,
                manifest_hash = excluded.manifest_hash, seen_at = excluded.seen_at
            """,
            [
                .text(Hex.encode(file.storeID)), .int(Int64(file.generation)),
                .text(Hex.encode(SecretsCrypto.hash(file.manifest))), .int(Clock.now()),
            ])
    }

    /// Checks every record (what `draven secrets verify` does); readers check only what they use.
    package func verifyAll() throws(SecretsError) {
        for entry in file.entries { _ = try open(entry) }
    }

    /// The names, kinds, versions and update times of all entries (never values).
    package var entries: [(name: String, kind: SecretKind, version: UInt64, updated: Int64)] {
        file.entries.map { ($0.name, $0.kind, $0.version, $0.updated) }
    }

    /// Decrypts one entry.
    /// - Throws: `.notFound`, or `.tampered` when the record does not authenticate under its name.
    package func secret(_ name: String) throws(SecretsError) -> SecretBytes {
        guard let entry = file.entries.first(where: { $0.name == name }) else { throw .notFound(name: name) }
        return try open(entry)
    }

    func open(_ entry: SecretsFile.Entry) throws(SecretsError) -> SecretBytes {
        guard entry.recordIsIntact else { throw .tampered("record of \(entry.name) was changed") }
        let aad = file.aad(name: entry.name, version: entry.version, kind: entry.kind)
        guard
            let value = dek.withUnsafeBytes({ SecretsCrypto.open(entry.record, aad: aad, key: $0, label: entry.name) })
        else {
            throw .tampered("entry \(entry.name) does not decrypt under its name, version and kind")
        }
        return value
    }

    /// A short keyed fingerprint of a value (for `list`), revealing nothing about it.
    func fingerprint(_ value: SecretBytes) -> String {
        let key = dek.withUnsafeBytes { SecretsCrypto.hash(Array("drv-fp/v1".utf8), key: $0) }
        return value.withUnsafeBytes { v in
            key.withUnsafeBytes { Hex.encode(SecretsCrypto.hash(raw: v, key: $0, length: 8)) }
        }
    }
}
