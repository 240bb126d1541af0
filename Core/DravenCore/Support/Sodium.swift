internal import CSodium
internal import Glibc

/// The few libsodium operations Core needs. https://doc.libsodium.org/
package enum Sodium {
    /// `sodium_init` must run before anything else; it is idempotent and cheap after the first call.
    static func ready() {
        precondition(sodium_init() >= 0, "libsodium failed to initialise")
    }

    package static func randomBytes(_ count: Int) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return out
    }

    /// Keyed BLAKE2b (crypto_generichash) of `message`, 32 bytes.
    package static func keyedHash(_ message: some Collection<UInt8>, key: [UInt8]) -> [UInt8] {
        ready()
        precondition(
            key.count >= Int(crypto_generichash_KEYBYTES_MIN) && key.count <= Int(crypto_generichash_KEYBYTES_MAX))
        var out = [UInt8](repeating: 0, count: 32)
        let m = Array(message)
        out.withUnsafeMutableBufferPointer { o in
            m.withUnsafeBufferPointer { mp in
                key.withUnsafeBufferPointer { k in
                    _ = crypto_generichash(o.baseAddress!, 32, mp.baseAddress, UInt64(mp.count), k.baseAddress, k.count)
                }
            }
        }
        return out
    }

    /// Unkeyed BLAKE2b-256, hex.
    package static func hashHex(_ message: some Collection<UInt8>) -> String {
        ready()
        var out = [UInt8](repeating: 0, count: 32)
        let m = Array(message)
        out.withUnsafeMutableBufferPointer { o in
            m.withUnsafeBufferPointer { mp in
                _ = crypto_generichash(o.baseAddress!, 32, mp.baseAddress, UInt64(mp.count), nil, 0)
            }
        }
        return Hex.encode(out)
    }

    /// Unkeyed BLAKE2b of `message`, `length` bytes (16 to 64).
    package static func hash(_ message: [UInt8], length: Int) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: length)
        out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                _ = crypto_generichash(o.baseAddress!, length, m.baseAddress, UInt64(m.count), nil, 0)
            }
        }
        return out
    }

    /// Constant-time equality (`sodium_memcmp`); different lengths are unequal.
    package static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    /// Overwrites `bytes` with zeros in a way the compiler cannot elide.
    package static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { if let p = $0.baseAddress { sodium_memzero(p, $0.count) } }
    }

    /// URL-safe base64 without padding.
    package static func base64URL(_ bytes: [UInt8]) -> String {
        ready()
        let variant = Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        let len = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: len)
        bytes.withUnsafeBufferPointer { b in
            _ = sodium_bin2base64(&out, len, b.baseAddress, b.count, variant)
        }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Sodium {
    /// SHA-256 (crypto_hash_sha256), hex.
    package static func sha256Hex(_ message: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                _ = crypto_hash_sha256(o.baseAddress!, m.baseAddress, UInt64(m.count))
            }
        }
        return Hex.encode(out)
    }
}

extension Sodium {
    /// HMAC-SHA256 of `message` under a secret key of any length (crypto_auth_hmacsha256_init).
    package static func hmacSHA256(key: SecretBytes, message: some Collection<UInt8>) -> [UInt8] {
        hmacSHA256(key: key, prefix: [], message: Array(message))
    }

    /// HMAC-SHA256 of `prefix` followed by `message`, without joining them (a runner signs
    /// `timestamp + "." + body`, and a log chunk's body is ~87 KB).
    package static func hmacSHA256(key: SecretBytes, prefix: [UInt8], message: [UInt8]) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: 32)
        if hasSHAExtensions {
            key.withUnsafeBytes { k in
                prefix.withUnsafeBufferPointer { p in
                    message.withUnsafeBufferPointer { m in
                        csodium_hmac_sha256_ni(
                            k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, p.baseAddress, p.count,
                            m.baseAddress, m.count, &out)
                    }
                }
            }
            return out
        }
        var state = crypto_auth_hmacsha256_state()
        key.withUnsafeBytes { k in  // SecretBytes always has a base address
            _ = crypto_auth_hmacsha256_init(&state, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count)
        }
        _ = crypto_auth_hmacsha256_update(&state, prefix, UInt64(prefix.count))
        _ = crypto_auth_hmacsha256_update(&state, message, UInt64(message.count))
        _ = crypto_auth_hmacsha256_final(&state, &out)
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return out
    }

    /// Whether this CPU has the x86 SHA extensions: HMAC-SHA256 then runs on them
    /// (Core/CSodium/sha256_ni.h; the same MAC as libsodium's, ~10× fewer instructions a byte).
    package static let hasSHAExtensions = csodium_has_sha_ni() != 0

    /// libsodium's HMAC-SHA256 whatever the CPU (the reference the SHA-NI path is tested against).
    package static func hmacSHA256Portable(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var state = crypto_auth_hmacsha256_state()
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_auth_hmacsha256_init(&state, key, key.count)
        _ = crypto_auth_hmacsha256_update(&state, message, UInt64(message.count))
        _ = crypto_auth_hmacsha256_final(&state, &out)
        return out
    }

    /// Whether `header` is `prefix` + the lowercase or uppercase hex of `expected`, compared in
    /// constant time.
    package static func hexSignatureMatches(_ header: String?, prefix: String, expected: [UInt8]) -> Bool {
        guard let header, header.hasPrefix(prefix), let given = Hex.decode(String(header.dropFirst(prefix.count)))
        else { return false }
        return constantTimeEquals(given, expected)
    }
}
