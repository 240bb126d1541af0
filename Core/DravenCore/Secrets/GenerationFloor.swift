/// The generation floor: the highest generation the admin commands have written, kept beside the
/// store (`<secrets-dir>/secrets.floor`) where the functions can read but not write it, signed
/// with the store's signing key. `secrets_state` in SQLite is the functions' own ratchet, but
/// they can write the database, so it cannot be the only record: a reader checks both, and a
/// missing `secrets_state` row is re-seeded only when the floor vouches for the file.
///
/// ```
/// "DRVFLR" | u8 format=1 | store_id[16] | u64 generation | manifest_hash[32] | signer_kid[8]
/// SIGNATURE[64] = Ed25519("drv-floor/v1\0" ‖ the 71 bytes above)
/// ```
/// Cost on the read path: one 135-byte file read. The floor's own signature is checked only when
/// the floor says something the verified manifest does not: when it names the file's generation
/// and manifest hash, it repeats exactly what the file's signature already vouches for.
struct GenerationFloor {
    var storeID: [UInt8]
    var generation: UInt64
    var manifestHash: [UInt8]
    var signerKID: [UInt8]
    var signature: [UInt8] = []

    static let magic = Array("DRVFLR".utf8)
    static let bodyBytes = 6 + 1 + 16 + 8 + 32 + 8
    static let fileBytes = bodyBytes + 64

    init(storeID: [UInt8], generation: UInt64, manifestHash: [UInt8], signerKID: [UInt8]) {
        self.storeID = storeID
        self.generation = generation
        self.manifestHash = manifestHash
        self.signerKID = signerKID
    }

    /// The floor a signed file stands for.
    init(of file: SecretsFile) {
        self.init(
            storeID: file.storeID, generation: file.generation, manifestHash: SecretsCrypto.hash(file.manifest),
            signerKID: file.signerKID)
    }

    var body: [UInt8] {
        var w = ByteWriter()
        w.raw(Self.magic)
        w.u8(1)
        w.raw(storeID)
        w.u64(generation)
        w.raw(manifestHash)
        w.raw(signerKID)
        return w.bytes
    }

    static func signedMessage(_ body: [UInt8]) -> [UInt8] { Array("drv-floor/v1\0".utf8) + body }

    func serialized(signingKey: SecretBytes) -> [UInt8] {
        let b = body
        return b + signingKey.withUnsafeBytes { SecretsCrypto.sign(Self.signedMessage(b), secretKey: $0) }
    }

    /// Reads the floor, or nil when there is none (a store written before floors existed).
    static func read(_ path: String) throws(SecretsError) -> GenerationFloor? {
        let bytes: [UInt8]
        do {
            bytes = try KeyFiles.read(path, forbidden: 0o022, maxBytes: fileBytes, what: "secrets generation floor")
        } catch .missing {
            return nil
        }
        guard bytes.count == fileBytes, Array(bytes[0..<6]) == magic, bytes[6] == 1 else {
            throw .tampered("the generation floor \(path) is not a draven floor file")
        }
        var r = ByteReader(bytes[7...])
        var floor = GenerationFloor(
            storeID: Array(try r.take(16)), generation: try r.u64(),
            manifestHash: Array(try r.take(32)), signerKID: Array(try r.take(8)))
        floor.signature = Array(try r.take(64))
        return floor
    }

    /// Checks `file` against this floor.
    /// - Throws: `.rollback` (the file is older than the floor), `.equivocation` (a different file
    ///   with the floor's generation), `.tampered` (the floor is not for this store or does not verify).
    func check(_ file: SecretsFile, signers: SignerKeys) throws(SecretsError) {
        guard storeID == file.storeID else { throw .tampered("the generation floor belongs to another store") }
        if generation < file.generation { return }  // a newer signed file: the floor is only a lower bound
        if generation == file.generation && Sodium.constantTimeEquals(manifestHash, SecretsCrypto.hash(file.manifest)) {
            return
        }
        guard let pk = signers[signerKID],
            SecretsCrypto.verify(signature: signature[...], message: Self.signedMessage(body), publicKey: pk)
        else { throw .tampered("the generation floor's signature does not verify") }
        if generation == file.generation { throw .equivocation(generation: generation) }
        throw .rollback(file: file.generation, seen: generation)
    }
}
