internal import CSodium

/// The libsodium operations of the secrets store, each domain-separated.
package enum SecretsCrypto {
    static let keyBytes = 32
    static let nonceBytes = 24  // crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
    static let tagBytes = 16  // crypto_aead_xchacha20poly1305_ietf_ABYTES

    static func ready() { precondition(sodium_init() >= 0) }

    /// XChaCha20-Poly1305 with a fresh random nonce; returns nonce ‖ ciphertext ‖ tag.
    static func seal(_ plaintext: UnsafeRawBufferPointer, aad: [UInt8], key: UnsafeRawBufferPointer) -> [UInt8] {
        ready()
        precondition(key.count == keyBytes)
        var out = [UInt8](repeating: 0, count: nonceBytes + plaintext.count + tagBytes)
        out.withUnsafeMutableBytes { o in
            randombytes_buf(o.baseAddress!, nonceBytes)
            var clen: UInt64 = 0
            let nonce = o.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let rc = aad.withUnsafeBufferPointer { a in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    nonce + nonceBytes, &clen, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(plaintext.count),
                    a.baseAddress, UInt64(a.count), nil, nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            precondition(rc == 0)
        }
        return out
    }

    /// Opens nonce ‖ ciphertext ‖ tag into a `SecretBytes`, or nil when it does not authenticate.
    static func open(_ box: ArraySlice<UInt8>, aad: [UInt8], key: UnsafeRawBufferPointer, label: String) -> SecretBytes?
    {
        ready()
        guard box.count >= nonceBytes + tagBytes, key.count == keyBytes else { return nil }
        let box = Array(box)
        var ok = false
        let secret = SecretBytes(count: box.count - nonceBytes - tagBytes, label: label) { dst in
            var mlen: UInt64 = 0
            let rc = box.withUnsafeBufferPointer { b in
                aad.withUnsafeBufferPointer { a in
                    crypto_aead_xchacha20poly1305_ietf_decrypt(
                        dst.baseAddress?.assumingMemoryBound(to: UInt8.self), &mlen, nil, b.baseAddress! + nonceBytes,
                        UInt64(b.count - nonceBytes), a.baseAddress, UInt64(a.count), b.baseAddress!,
                        key.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            ok = rc == 0
        }
        return ok ? secret : nil
    }

    /// BLAKE2b of `message` with an optional key, `length` bytes.
    static func hash(_ message: [UInt8], key: UnsafeRawBufferPointer? = nil, length: Int = 32) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: length)
        message.withUnsafeBufferPointer { m in
            _ = crypto_generichash(
                &out, length, m.baseAddress, UInt64(m.count),
                key?.baseAddress?.assumingMemoryBound(to: UInt8.self), key?.count ?? 0)
        }
        return out
    }

    /// BLAKE2b of bytes that may be secret (no copy is made).
    static func hash(raw message: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, length: Int) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: length)
        _ = crypto_generichash(
            &out, length, message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
            key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count)
        return out
    }

    static func verify(signature: ArraySlice<UInt8>, message: [UInt8], publicKey: [UInt8]) -> Bool {
        ready()
        let sig = Array(signature)
        return sig.count == 64 && publicKey.count == 32
            && crypto_sign_verify_detached(sig, message, UInt64(message.count), publicKey) == 0
    }

    static func sign(_ message: [UInt8], secretKey: UnsafeRawBufferPointer) -> [UInt8] {
        ready()
        var sig = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_detached(
            &sig, nil, message, UInt64(message.count), secretKey.baseAddress!.assumingMemoryBound(to: UInt8.self))
        return sig
    }

    /// A new Ed25519 key pair (public, secret).
    static func signingKeyPair() -> ([UInt8], SecretBytes) {
        ready()
        var pk = [UInt8](repeating: 0, count: 32)
        let sk = SecretBytes(count: 64, label: "signing key") {
            _ = crypto_sign_keypair(&pk, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return (pk, sk)
    }

    /// A new X25519 key pair for sealed boxes (public, secret).
    static func boxKeyPair() -> ([UInt8], SecretBytes) {
        ready()
        var pk = [UInt8](repeating: 0, count: 32)
        let sk = SecretBytes(count: 32, label: "intake key") {
            _ = crypto_box_keypair(&pk, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return (pk, sk)
    }

    static func boxPublicKey(of secret: SecretBytes) -> [UInt8] {
        var pk = [UInt8](repeating: 0, count: 32)
        secret.withUnsafeBytes { _ = crypto_scalarmult_base(&pk, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        return pk
    }

    /// `crypto_box_seal`: anyone with the public key can seal; only the secret key opens.
    static func sealAnonymously(_ message: [UInt8], publicKey: [UInt8]) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: message.count + 48)  // crypto_box_SEALBYTES
        _ = crypto_box_seal(&out, message, UInt64(message.count), publicKey)
        return out
    }

    static func openSealed(_ box: [UInt8], publicKey: [UInt8], secretKey: SecretBytes) -> SecretBytes? {
        guard box.count >= 48 else { return nil }
        var ok = false
        let opened = SecretBytes(count: box.count - 48, label: "sealed value") { dst in
            ok = secretKey.withUnsafeBytes { sk in
                crypto_box_seal_open(
                    dst.baseAddress?.assumingMemoryBound(to: UInt8.self), box, UInt64(box.count), publicKey,
                    sk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
        return ok ? opened : nil
    }

    static func randomKey(label: String) -> SecretBytes {
        ready()
        return SecretBytes(count: keyBytes, label: label) { randombytes_buf($0.baseAddress!, keyBytes) }
    }

    static func base64(_ bytes: [UInt8]) -> String {
        ready()
        let variant = Int32(sodium_base64_VARIANT_ORIGINAL)
        let len = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: len)
        bytes.withUnsafeBufferPointer { _ = sodium_bin2base64(&out, len, $0.baseAddress, $0.count, variant) }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Strict (canonical) base64 decoding, or nil.
    package static func base64Decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        ready()
        let input = Array(text)
        // libsodium 1.0.18 (Debian 12) reads every byte >= 0x80 as '/' (a signed-char slip in its
        // constant-time decoder): "HMAC …\x80…" passed for "HMAC …/…". Found by the fuzz target `signatures`.
        guard !input.contains(where: { $0 >= 0x80 }) else { return nil }
        var out = [UInt8](repeating: 0, count: input.count)
        var len = 0
        let rc = input.withUnsafeBufferPointer { i in
            i.withMemoryRebound(to: CChar.self) { c in
                sodium_base642bin(
                    &out, out.count, c.baseAddress, c.count, nil, &len, nil, Int32(sodium_base64_VARIANT_ORIGINAL))
            }
        }
        guard rc == 0 else { return nil }
        out.removeSubrange(len...)
        return out
    }
}
