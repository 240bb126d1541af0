import Glibc

@testable import DravenCore

/// `secrets`: the secrets file parser, with the signature check (a real store's pinned key: only
/// changes to the unsigned records get past it) and without it (`SecretsFile.parseUnverified`, in
/// the fuzz build only: a fuzzer cannot forge Ed25519). Properties: a file the parser accepts,
/// re-signed, parses back to the same fields; its entries open or are refused (record hash, AEAD)
/// with the store's master key. Keys: Tests/Fuzz/keys (a throwaway store holding no real secret).
enum FuzzSecrets {
    static let keys = Environment.get("DRAVEN_FUZZ_KEYS") ?? "Tests/Fuzz/keys"
    static let signers: SignerKeys = {
        guard let keys = try? KeyFiles.publicKeys(keys + "/secrets.pub") else {
            fatalError("cannot read \(keys)/secrets.pub")
        }
        return keys
    }()
    /// The throwaway store's master key (`drvkek1:<base64>`), read without the mode check (git does not keep 0600).
    static let kek: SecretBytes = {
        guard let f = fopen(keys + "/secrets.kek", "r") else { fatalError("cannot read \(keys)/secrets.kek") }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, 256, f) != nil else { fatalError("empty \(keys)/secrets.kek") }
        let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard text.hasPrefix("drvkek1:"), let key = SecretsCrypto.base64Decode(Array(text.utf8.dropFirst(8))),
            key.count == 32
        else {
            fatalError("\(keys)/secrets.kek is not drvkek1:<base64 of 32 bytes>")
        }
        return SecretBytes(copying: key, label: "fuzz master key")
    }()
    static let resigner = SecretsCrypto.signingKeyPair()

    static func run(_ input: [UInt8]) {
        if let file = try? SecretsFile.parse(input, signers: signers) { open(file) }
        guard let file = try? SecretsFile.parseUnverified(input) else { return }
        let again: SecretsFile
        do {
            again = try SecretsFile.parse(
                file.serialized(signingKey: resigner.1),
                signers: SignerKeys(kid: file.signerKID, publicKey: resigner.0))
        } catch {
            check(false, "a parsed file, re-signed, does not parse: \(error)")
            return
        }
        check(
            again.storeID == file.storeID && again.generation == file.generation && again.created == file.created
                && again.dekID == file.dekID && again.dekCheck == file.dekCheck, "the header changed in a round trip")
        check(
            again.slots.map { [$0.type] + $0.kid + $0.wrapped } == file.slots.map { [$0.type] + $0.kid + $0.wrapped },
            "the key slots changed in a round trip")
        let index = { (f: SecretsFile) in f.entries.map { "\($0.name) \($0.version) \($0.kind) \($0.updated)" } }
        check(index(again) == index(file), "the index changed in a round trip")
        check(
            zip(again.entries, file.entries).allSatisfy { Array($0.record) == Array($1.record) },
            "a record changed in a round trip")
        open(file)
    }

    /// Unwraps the data key and opens every entry, as `draven secrets verify` does.
    static func open(_ file: SecretsFile) {
        guard let dek = try? SecretsStore.unwrap(file, kek: kek) else { return }
        let store = SecretsStore(file: file, dek: dek)
        for entry in file.entries {
            if let value = try? store.open(entry) {
                check(entry.recordIsIntact, "an entry whose record hash is wrong was opened")
                _ = store.fingerprint(value)
            }
        }
    }
}
