/// Strict base64 (RFC 4648 §4, the standard alphabet with `=` padding) decoded with a table: a log
/// chunk carries ~87 KB of it, and libsodium's constant-time `sodium_base642bin` (right for keys,
/// `SecretsCrypto.base64Decode`) took ~6.7 M instructions for that, a third of the whole request.
/// Log data is not secret to the process decoding it, so a table lookup per byte is fine here.
package enum Base64 {
    /// 0–63 for the alphabet, 0xFF for anything else.
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            t[Int(c)] = UInt8(i)
        }
        return t
    }()

    /// The bytes `text` encodes, or nil unless it is canonical: a length that is a multiple of
    /// four, padding only at the end (at most two `=`), no whitespace, and the unused bits of the
    /// last group zero (so each byte string has exactly one accepted encoding).
    package static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode($0) }
    }

    package static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let n = input.count
        guard n % 4 == 0 else { return nil }
        guard n > 0 else { return [] }
        let pad = input[n - 1] == UInt8(ascii: "=") ? (input[n - 2] == UInt8(ascii: "=") ? 2 : 1) : 0
        let size = n / 4 * 3 - pad
        return table.withUnsafeBufferPointer { t -> [UInt8]? in
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                var o = 0
                var i = 0
                let full = n - (pad > 0 ? 4 : 0)
                while i < full {
                    let a = t[Int(input[i])]
                    let b = t[Int(input[i + 1])]
                    let c = t[Int(input[i + 2])]
                    let d = t[Int(input[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 {
                        ok = false
                        break
                    }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    buffer[o] = UInt8(truncatingIfNeeded: v >> 16)
                    buffer[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    buffer[o + 2] = UInt8(truncatingIfNeeded: v)
                    o += 3
                    i += 4
                }
                if ok && pad > 0 {
                    let a = t[Int(input[i])]
                    let b = t[Int(input[i + 1])]
                    let c = pad == 1 ? t[Int(input[i + 2])] : 0
                    if (a | b | c) & 0xC0 != 0 || (pad == 2 ? b & 0x0F : c & 0x03) != 0 {
                        ok = false
                    } else {
                        buffer[o] = a << 2 | b >> 4
                        if pad == 1 { buffer[o + 1] = b << 4 | c >> 2 }
                        o += 3 - pad
                    }
                }
                count = ok ? o : 0
            }
            return ok ? out : nil
        }
    }
}
