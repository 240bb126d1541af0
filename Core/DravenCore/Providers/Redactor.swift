internal import Glibc

/// Makes what a provider (or chat platform, or mail server) said about a call safe to keep and
/// to show: every message built from an answer passes through `clean` before it reaches the
/// outbox (`last_error`), the job's history, the audit trail or the API. A provider answering
/// 401 may echo the request's `Authorization` header or the token itself in its body.
///
/// `clean` removes
/// - the credential sent in that call: its exact bytes and its percent-encoded and base64
///   (standard and URL-safe) forms;
/// - anything shaped like a credential: `Bearer …` / `Basic …` values, `PRIVATE-TOKEN: …`,
///   `token=…`-style form fields, and provider token formats (`ghp_`, `gho_`, `ghu_`, `ghs_`,
///   `ghr_`, `github_pat_`, `glpat-`, `glptt-`, `gldt-`, `glrt-`, `xoxb-`, `xoxp-`, `xapp-`,
///   `ATATT`, `ATCTT`, `ATBB`, draven's own `drv_`), keeping the prefix so the kind stays visible;
///
/// then replaces control characters with spaces and bounds the text to `limit` bytes (cut on a
/// character boundary, after redacting, so no part of a secret survives the cut).
///
/// The variants of the credential are kept in `SecretBytes` (locked memory, wiped when the
/// redactor goes away).
package struct Redactor {
    package static let limit = 500
    static let mark = Array("[redacted]".utf8)

    private let needles: [SecretBytes]

    /// A redactor that knows no credential: it removes only what looks like one.
    package static var patternsOnly: Redactor { Redactor([]) }

    package init(_ credentials: [SecretBytes?]) {
        var needles: [SecretBytes] = []
        for credential in credentials.compactMap({ $0 }) where credential.count > 0 {
            needles.append(credential)
            var raw = credential.withUnsafeBytes { Array($0) }
            defer { Sodium.wipe(&raw) }
            let variants = [
                Self.percentEncoded(raw), Self.base64(raw, urlSafe: false), Self.base64(raw, urlSafe: true),
            ]
            for var variant in variants {
                if variant != raw { needles.append(SecretBytes(copying: variant, label: "redaction")) }
                Sodium.wipe(&variant)
            }
        }
        // Longest first: a secret that contains another is removed whole.
        self.needles = needles.sorted { $0.count > $1.count }
    }

    /// `text` without credentials, without control characters, at most `limit` bytes.
    package func clean(_ text: String) -> String {
        var bytes = Array(text.utf8)
        for needle in needles { bytes = needle.withUnsafeBytes { Self.replace(bytes, $0) } }
        bytes = Self.redactShapes(bytes)
        for i in bytes.indices where bytes[i] < 0x20 || bytes[i] == 0x7f { bytes[i] = 0x20 }
        // A credential that is not UTF-8 can cut a character in two: the text is made valid
        // (U+FFFD, three bytes) before it is bounded, so the bound holds of what is kept.
        return Self.bounded(Array(String(decoding: bytes, as: UTF8.self).utf8))
    }

    /// `bytes` with every form of the known credentials (see `init`) replaced by `mark`, and
    /// nothing else changed: no shapes, no control characters, no bound. A job's archived log
    /// (`POST /hooks/runner/log`) is masked so: its bytes are kept as the runner sent them.
    package func mask(_ bytes: [UInt8], with mark: [UInt8]) -> [UInt8] {
        var out = bytes
        for needle in needles { out = needle.withUnsafeBytes { Self.replace(out, $0, mark: mark) } }
        return out
    }

    // MARK: credential variants

    static func percentEncoded(_ raw: [UInt8]) -> [UInt8] {
        Array(Dispatch.percentEncode(String(decoding: raw, as: UTF8.self)).utf8)
    }

    /// Base64 without padding (the padded form contains it).
    static func base64(_ raw: [UInt8], urlSafe: Bool) -> [UInt8] {
        let alphabet =
            Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
            + Array((urlSafe ? "-_" : "+/").utf8)
        var out: [UInt8] = []
        var i = 0
        while i < raw.count {
            let n = min(3, raw.count - i)
            let chunk = (Int(raw[i]) << 16) | (n > 1 ? Int(raw[i + 1]) << 8 : 0) | (n > 2 ? Int(raw[i + 2]) : 0)
            for k in 0...n { out.append(alphabet[(chunk >> (18 - 6 * k)) & 63]) }
            i += 3
        }
        return out
    }

    // MARK: matching

    /// Every occurrence of `needle` in `bytes` replaced by the mark.
    static func replace(_ bytes: [UInt8], _ needle: UnsafeRawBufferPointer, mark: [UInt8] = Redactor.mark)
        -> [UInt8]
    {
        // Most texts hold no credential: look before copying.
        guard var at = first(needle, in: bytes, from: 0) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 0
        while true {
            out += bytes[start..<at]
            out += mark
            start = at + needle.count
            guard let next = first(needle, in: bytes, from: start) else { break }
            at = next
        }
        out += bytes[start...]
        return out
    }

    /// Where `needle` first occurs in `bytes` from `start` on, if it does: `memchr` (vectorised in
    /// glibc) for its first byte, `memcmp` for the rest. A 64 KiB log chunk is searched for four
    /// forms of a secret on every request.
    static func first(_ needle: UnsafeRawBufferPointer, in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count > 0, bytes.count - start >= needle.count else { return nil }
        return bytes.withUnsafeBytes { b -> Int? in
            let base = b.baseAddress!
            let last = b.count - needle.count  // the last index a match can start at
            var i = start
            while i <= last {
                guard let hit = memchr(base + i, Int32(needle[0]), last - i + 1) else { return nil }
                let at = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
                if memcmp(base + at, needle.baseAddress!, needle.count) == 0 { return at }
                i = at + 1
            }
            return nil
        }
    }

    /// Prefixes of provider token formats: the prefix is kept, the rest of the token removed.
    static let tokenPrefixes = [
        "github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "glpat-", "glptt-", "gldt-", "glrt-",
        "xoxb-", "xoxp-", "xoxa-", "xoxe-", "xapp-", "ATATT", "ATCTT", "ATBB", "drv_",
    ].map { Array($0.utf8) }
    /// Words after which a credential follows (matched case-insensitively), kept.
    static let keywords = [
        "bearer ", "basic ", "private-token:", "job-token:", "token=", "access_token=", "private_token=",
        "password=", "secret=",
    ].map { Array($0.utf8) }

    /// A byte that ends a token: space, quotes, and the punctuation that surrounds values.
    static func ends(_ b: UInt8) -> Bool {
        b <= 0x20 || b == 0x7f || "\"'`,;&<>()[]{}\\".utf8.contains(b)
    }

    static func redactShapes(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if let prefix = tokenPrefixes.first(where: { matches(bytes, at: i, $0, caseless: false) }),
                i + prefix.count < bytes.count, !ends(bytes[i + prefix.count])
            {
                out += prefix
                i = skipToken(bytes, from: i + prefix.count, into: &out)
            } else if let word = keywords.first(where: { matches(bytes, at: i, $0, caseless: true) }) {
                out += bytes[i..<(i + word.count)]
                var j = i + word.count
                while j < bytes.count, bytes[j] == 0x20 {
                    out.append(0x20)
                    j += 1
                }
                i = j < bytes.count && !ends(bytes[j]) ? skipToken(bytes, from: j, into: &out) : j
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    private static func skipToken(_ bytes: [UInt8], from start: Int, into out: inout [UInt8]) -> Int {
        var j = start
        while j < bytes.count, !ends(bytes[j]) { j += 1 }
        out += mark
        return j
    }

    private static func matches(_ bytes: [UInt8], at i: Int, _ word: [UInt8], caseless: Bool) -> Bool {
        guard i + word.count <= bytes.count else { return false }
        for k in 0..<word.count {
            var b = bytes[i + k]
            if caseless, b >= 0x41, b <= 0x5a { b += 0x20 }
            if b != word[k] { return false }
        }
        return true
    }

    /// At most `limit` bytes, cut on a UTF-8 character boundary, with `…` when cut.
    static func bounded(_ bytes: [UInt8]) -> String {
        guard bytes.count > limit else { return String(decoding: bytes, as: UTF8.self) }
        var end = limit - 3
        while end > 0, bytes[end] & 0xc0 == 0x80 { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self) + "…"
    }
}
