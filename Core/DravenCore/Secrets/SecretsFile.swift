/// The secrets file, format v1 (see docs/secrets.md; after ../shared/reference/secrets.md §4.3).
///
/// ```
/// MANIFEST (signed)
///   "DRVSEC" | u8 format=1 | u8 alg=1 (XChaCha20-Poly1305-IETF) | u32 manifest_len
///   store_id[16] | u64 generation | i64 created | signer_kid[8] | dek_id[8] | dek_check[32]
///   u16 n_slots  | slots: u8 type (1 = master key) | kid[8] | u16 len | wrapped DEK (nonce ‖ ct ‖ tag)
///   u32 n_entries | index sorted by name: u16 name_len | name | u64 version | u8 kind | i64 updated
///                                         | u32 off | u32 len | rec_hash[32] = BLAKE2b-256(record)
/// SIGNATURE[64] = Ed25519("drv-sig/v1\0" ‖ MANIFEST)
/// RECORDS: per entry nonce[24] ‖ ciphertext ‖ tag, contiguous, in index order, nothing after
/// AAD(entry) = "drv-ent/v1\0" ‖ store_id ‖ dek_id ‖ u16 name_len ‖ name ‖ u64 version ‖ u8 kind
/// ```
/// The signature is checked before anything past the fixed header is parsed.
struct SecretsFile {
    struct Slot {
        var type: UInt8
        var kid: [UInt8]
        var wrapped: [UInt8]
    }
    struct Entry {
        var name: String
        var version: UInt64
        var kind: SecretKind
        var updated: Int64
        var record: ArraySlice<UInt8>
        /// BLAKE2b-256 of `record`, from the signed index; checked before the record is used.
        var recordHash: [UInt8] = []

        /// Whether the record's bytes are the ones the signed index names.
        var recordIsIntact: Bool { Sodium.constantTimeEquals(SecretsCrypto.hash(Array(record)), recordHash) }
    }

    static let magic = Array("DRVSEC".utf8)
    static let maxFileBytes = 4 << 20
    static let maxEntryBytes = 64 << 10
    static let maxEntries = 4096
    static let fixedHeader = 6 + 1 + 1 + 4 + 16 + 8 + 8 + 8 + 8 + 32

    var storeID: [UInt8]
    var generation: UInt64
    var created: Int64
    var signerKID: [UInt8]
    var dekID: [UInt8]
    var dekCheck: [UInt8]
    var slots: [Slot]
    var entries: [Entry]
    /// The signed bytes, kept to hash for the rollback ratchet.
    var manifest: [UInt8] = []

    /// Parses and verifies `bytes` against the pinned signer keys (kid → public key).
    /// - Throws: `SecretsError.tampered` for any structural or signature failure.
    static func parse(_ bytes: [UInt8], signers: SignerKeys) throws(SecretsError) -> SecretsFile {
        try parse(bytes) { (kid, signature, message) throws(SecretsError) in
            guard let publicKey = signers[kid] else { throw .tampered("signed by an unknown key \(Hex.encode(kid))") }
            guard SecretsCrypto.verify(signature: signature, message: message, publicKey: publicKey) else {
                throw .tampered("the signature does not verify")
            }
        }
    }

    #if DRAVEN_FUZZ
        /// The parser past the signature check, which a fuzzer cannot pass: only in the fuzz build
        /// (`-DDRAVEN_FUZZ`, Tests/Fuzz), never in a shipped binary.
        static func parseUnverified(_ bytes: [UInt8]) throws(SecretsError) -> SecretsFile {
            try parse(bytes) { (_, _, _) throws(SecretsError) in }
        }
    #endif

    /// - Parameter check: throws unless the signature over the message verifies with the signer's key.
    private static func parse(
        _ bytes: [UInt8],
        check: (_ signerKID: [UInt8], _ signature: ArraySlice<UInt8>, _ message: [UInt8]) throws(SecretsError) -> Void
    ) throws(SecretsError) -> SecretsFile {
        guard bytes.count <= maxFileBytes else { throw .tampered("file larger than 4 MiB") }
        guard bytes.count >= fixedHeader + 64, Array(bytes[0..<6]) == magic else {
            throw .tampered("not a draven secrets file")
        }
        guard bytes[6] == 1 else { throw .tampered("unknown format \(bytes[6])") }
        guard bytes[7] == 1 else { throw .tampered("unknown algorithm \(bytes[7])") }
        var header = ByteReader(bytes[8...])
        let manifestLen = Int(try header.u32())
        guard manifestLen >= fixedHeader, manifestLen + 64 <= bytes.count else {
            throw .tampered("bad manifest length")
        }
        let storeID = Array(try header.take(16))
        let generation = try header.u64()
        let created = try header.i64()
        let signerKID = Array(try header.take(8))
        let manifest = Array(bytes[0..<manifestLen])
        try check(signerKID, bytes[manifestLen..<manifestLen + 64], signedMessage(manifest))
        // Signed from here on: parse the rest of the manifest strictly.
        var r = ByteReader(bytes[(8 + 4 + 16 + 8 + 8 + 8)..<manifestLen])
        let dekID = Array(try r.take(8))
        let dekCheck = Array(try r.take(32))
        var slots: [Slot] = []
        for _ in 0..<Int(try r.u16()) {
            let type = try r.u8()
            let kid = Array(try r.take(8))
            let wrapped = Array(try r.take(Int(try r.u16())))
            slots.append(Slot(type: type, kid: kid, wrapped: wrapped))
        }
        let count = Int(try r.u32())
        guard count <= maxEntries else { throw .tampered("too many entries") }
        let records = bytes[(manifestLen + 64)...]
        var entries: [Entry] = []
        var expectedOffset = 0
        for _ in 0..<count {
            let name = try r.string16()
            let version = try r.u64()
            guard let kind = SecretKind(rawValue: try r.u8()) else { throw .tampered("unknown kind for \(name)") }
            let updated = try r.i64()
            let off = Int(try r.u32())
            let len = Int(try r.u32())
            let recHash = Array(try r.take(32))
            guard off == expectedOffset, len <= maxEntryBytes + 40, records.startIndex + off + len <= records.endIndex
            else {
                throw .tampered("record of \(name) is out of place")
            }
            if let last = entries.last, last.name >= name { throw .tampered("index not sorted or names repeated") }
            let record = records[(records.startIndex + off)..<(records.startIndex + off + len)]
            // The record's hash is checked when it is read (SecretsStore.open): a reader hashes
            // only the entries it uses.
            entries.append(
                Entry(name: name, version: version, kind: kind, updated: updated, record: record, recordHash: recHash))
            expectedOffset = off + len
        }
        guard r.atEnd else { throw .tampered("trailing bytes in the manifest") }
        guard records.startIndex + expectedOffset == records.endIndex else {
            throw .tampered("trailing bytes after the records")
        }
        return SecretsFile(
            storeID: storeID, generation: generation, created: created, signerKID: signerKID, dekID: dekID,
            dekCheck: dekCheck, slots: slots, entries: entries, manifest: manifest)
    }

    /// Serializes and signs. Entries must be sorted by name.
    func serialized(signingKey: SecretBytes) -> [UInt8] {
        var records: [UInt8] = []
        var index = ByteWriter()
        index.u32(UInt32(entries.count))
        for e in entries {
            index.string16(e.name)
            index.u64(e.version)
            index.u8(e.kind.rawValue)
            index.i64(e.updated)
            index.u32(UInt32(records.count))
            index.u32(UInt32(e.record.count))
            index.raw(SecretsCrypto.hash(Array(e.record)))
            records.append(contentsOf: e.record)
        }
        var body = ByteWriter()
        body.raw(storeID)
        body.u64(generation)
        body.i64(created)
        body.raw(signerKID)
        body.raw(dekID)
        body.raw(dekCheck)
        body.u16(UInt16(slots.count))
        for s in slots {
            body.u8(s.type)
            body.raw(s.kid)
            body.u16(UInt16(s.wrapped.count))
            body.raw(s.wrapped)
        }
        body.raw(index.bytes)
        var manifest = ByteWriter()
        manifest.raw(Self.magic)
        manifest.u8(1)
        manifest.u8(1)
        manifest.u32(UInt32(6 + 2 + 4 + body.bytes.count))
        manifest.raw(body.bytes)
        let signature = signingKey.withUnsafeBytes {
            SecretsCrypto.sign(Self.signedMessage(manifest.bytes), secretKey: $0)
        }
        return manifest.bytes + signature + records
    }

    static func signedMessage(_ manifest: [UInt8]) -> [UInt8] { Array("drv-sig/v1\0".utf8) + manifest }

    func aad(name: String, version: UInt64, kind: SecretKind) -> [UInt8] {
        var w = ByteWriter()
        w.raw(Array("drv-ent/v1\0".utf8))
        w.raw(storeID)
        w.raw(dekID)
        w.string16(name)
        w.u64(version)
        w.u8(kind.rawValue)
        return w.bytes
    }

    func wrapAAD(kekID: [UInt8]) -> [UInt8] { Array("drv-wrap/v1\0".utf8) + storeID + dekID + kekID }

    static func dekCheck(dek: SecretBytes, storeID: [UInt8], dekID: [UInt8]) -> [UInt8] {
        dek.withUnsafeBytes { SecretsCrypto.hash(Array("drv-kc/v1".utf8) + storeID + dekID, key: $0) }
    }

    static func isValidName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard let first = u.first, u.count <= 128, (97...122).contains(first) || (48...57).contains(first) else {
            return false
        }
        return u.allSatisfy {
            (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 95 || $0 == 47 || $0 == 45
        }
    }
}

/// What a secret is, bound into its ciphertext (a token cannot be passed off as an HMAC key).
package enum SecretKind: UInt8, Sendable, CaseIterable {
    case token = 1
    case hmac, sshKey, pem, password, opaque

    package var name: String {
        switch self {
        case .token: "token"
        case .hmac: "hmac"
        case .sshKey: "ssh-key"
        case .pem: "pem"
        case .password: "password"
        case .opaque: "opaque"
        }
    }

    package init?(name: String) {
        guard let k = SecretKind.allCases.first(where: { $0.name == name }) else { return nil }
        self = k
    }
}
