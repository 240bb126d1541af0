/// A JSON value (RFC 8259) with a strict parser and a compact serializer, without Foundation:
/// functions parse one small body per process, so this avoids Foundation's start-up cost.
package enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// Numbers without fraction or exponent that fit in 64 bits.
    case int(Int64)
    /// Every other number.
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// A JSON object that keeps its members in order. Keys are unique, and compared as JSON compares
/// them — by their bytes (code points), not by Swift's `==`, for which `"\u{212A}"` (KELVIN SIGN)
/// is `"K"`: `{"\u212a": 1, "K": 2}["K"]` is 2, as every other JSON reader says.
package struct JSONObject: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    package var entries: [(key: String, value: JSON)] = []

    package init() {}
    package init(dictionaryLiteral elements: (String, JSON)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// Reading finds the member; setting replaces it in place or appends; setting nil removes it.
    package subscript(key: String) -> JSON? {
        get { entries.first { Self.same($0.key, key) }?.value }
        set {
            let index = entries.firstIndex { Self.same($0.key, key) }
            switch (index, newValue) {
            case (let i?, let v?): entries[i].value = v
            case (let i?, nil): entries.remove(at: i)
            case (nil, let v?): entries.append((key, v))
            case (nil, nil): break
            }
        }
    }

    package var keys: [String] { entries.map(\.key) }
    package var count: Int { entries.count }

    package static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.entries.count == b.entries.count
            && zip(a.entries, b.entries).allSatisfy { same($0.key, $1.key) && $0.value == $1.value }
    }

    /// Whether two keys are the same key: the same bytes.
    static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
}

/// Why a text is not JSON: the byte offset and a human reason.
package struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    package var offset: Int
    package var reason: String
    package var description: String { "\(reason) at byte \(offset)" }
}

extension JSON {
    package var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    package var intValue: Int64? { if case .int(let i) = self { i } else { nil } }
    package var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    package var arrayValue: [JSON]? { if case .array(let a) = self { a } else { nil } }
    package var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    package var isNull: Bool { self == .null }
    package var doubleValue: Double? {
        switch self {
        case .double(let d): d
        case .int(let i): Double(i)
        default: nil
        }
    }
    package subscript(key: String) -> JSON? { objectValue?[key] }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    package init(stringLiteral value: String) { self = .string(value) }
    package init(integerLiteral value: Int64) { self = .int(value) }
    package init(booleanLiteral value: Bool) { self = .bool(value) }
    package init(arrayLiteral elements: JSON...) { self = .array(elements) }
    package init(dictionaryLiteral elements: (String, JSON)...) {
        var o = JSONObject()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
    package init(nilLiteral: ()) { self = .null }
}

// MARK: - Parsing

extension JSON {
    /// The deepest nesting of arrays and objects accepted.
    package static let maxDepth = 64

    /// What the parser does with a key that an object repeats (RFC 8259 §4 leaves it open).
    package enum DuplicateKeys: Sendable {
        /// Refuse the document: draven's own contracts (API bodies, the runner callback,
        /// heartbeats) are unambiguous or refused.
        case refuse
        /// The last occurrence's value wins, in the first occurrence's place — how JavaScript's
        /// `JSON.parse`, Ruby, Go and Python read it. For bodies a provider wrote (GitLab's Job
        /// Hook repeats `repository.git_ssh_url`): they are read as the provider's own consumers
        /// read them, not refused.
        case lastWins
    }

    /// Parses exactly one JSON value (surrounded by optional whitespace).
    /// - Throws: `JSONParseError` on anything RFC 8259 does not allow, on invalid UTF-8, on a
    ///   duplicate key in an object unless `duplicateKeys` is `.lastWins` (by default ambiguous
    ///   JSON is refused), and on nesting deeper than 64.
    package static func parse(
        _ bytes: some Collection<UInt8>,
        duplicateKeys: DuplicateKeys = .refuse
    ) throws(JSONParseError) -> JSON {
        let array = Array(bytes)
        var parser = Parser(bytes: array, duplicateKeys: duplicateKeys)
        return try parser.document()
    }

    package static func parse(_ text: String, duplicateKeys: DuplicateKeys = .refuse) throws(JSONParseError) -> JSON {
        try parse(Array(text.utf8), duplicateKeys: duplicateKeys)
    }
}

private struct Parser {
    let bytes: [UInt8]
    let duplicateKeys: JSON.DuplicateKeys
    var i = 0
    var depth = 0

    init(bytes: [UInt8], duplicateKeys: JSON.DuplicateKeys = .refuse) {
        self.bytes = bytes
        self.duplicateKeys = duplicateKeys
    }

    func fail(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? i, reason: reason)
    }

    mutating func document() throws(JSONParseError) -> JSON {
        skipSpace()
        guard i < bytes.count else { throw fail("expected a JSON value, found end of input") }
        let value = try self.value()
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected data after the JSON value") }
        return value
    }

    mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0a, 0x0d: i += 1
            default: return
            }
        }
    }

    mutating func value() throws(JSONParseError) -> JSON {
        guard i < bytes.count else { throw fail("expected a JSON value, found end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character; expected a JSON value")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("invalid literal") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
        i += n
    }

    mutating func enter() throws(JSONParseError) {
        depth += 1
        guard depth <= JSON.maxDepth else { throw fail("nesting deeper than \(JSON.maxDepth)") }
    }

    mutating func object() throws(JSONParseError) -> JSON {
        try enter()
        i += 1
        var o = JSONObject()
        skipSpace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return .object(o)
        }
        var hashes: [UInt64] = []  // of the keys so far: duplicates are found comparing these first
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = i
            let key = try string()
            let hash = Self.hash(key)
            var repeated: Int?
            if hashes.contains(hash), let first = o.entries.firstIndex(where: { JSONObject.same($0.key, key) }) {
                guard duplicateKeys == .lastWins else { throw fail("duplicate key \"\(key)\"", at: keyOffset) }
                repeated = first
            }
            hashes.append(hash)
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after object key") }
            i += 1
            skipSpace()
            let member = try value()
            if let repeated { o.entries[repeated].value = member } else { o.entries.append((key, member)) }
            skipSpace()
            guard i < bytes.count else { throw fail("expected ',' or '}' after object member") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                depth -= 1
                return .object(o)
            }
            throw fail("expected ',' or '}' after object member")
        }
    }

    mutating func array() throws(JSONParseError) -> JSON {
        try enter()
        i += 1
        var a: [JSON] = []
        skipSpace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            return .array(a)
        }
        while true {
            skipSpace()
            a.append(try value())
            skipSpace()
            guard i < bytes.count else { throw fail("expected ',' or ']' after array element") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                depth -= 1
                return .array(a)
            }
            throw fail("expected ',' or ']' after array element")
        }
    }

    mutating func number() throws(JSONParseError) -> JSON {
        let start = i
        let integral = try scanNumber()
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let v = Int64(text) { return .int(v) }
        guard let d = Double(text), d.isFinite else { throw fail("number out of range", at: start) }
        return .double(d)
    }

    /// Moves past a number's grammar; true when it has no fraction or exponent.
    mutating func scanNumber() throws(JSONParseError) -> Bool {
        let start = i
        var integral = true
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count && isDigit(bytes[i]) { throw fail("leading zeros are not allowed", at: start) }
        } else {
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit after '.'") }
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            integral = false
            i += 1
            if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("expected a digit in the exponent") }
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        return integral
    }

    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    mutating func string() throws(JSONParseError) -> String {
        let start = i + 1
        var out: [UInt8] = []
        if try scanString(into: &out, keep: true) { return String(decoding: out, as: UTF8.self) }
        return String(decoding: bytes[start..<(i - 1)], as: UTF8.self)  // no escapes: the bytes as they are
    }

    /// Moves past a string (validating it). Returns whether it had escapes; if it had and `keep`,
    /// `out` holds its decoded bytes (without escapes the string is its bytes, and `out` is not
    /// touched: one copy less for nearly every string).
    mutating func scanString(into out: inout [UInt8], keep: Bool) throws(JSONParseError) -> Bool {
        i += 1  // opening quote
        var runStart = i
        var escaped = false
        while true {
            i = Self.plainRun(bytes, from: i)
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                if keep && escaped { out.append(contentsOf: bytes[runStart..<i]) }
                i += 1
                return escaped
            }
            if c < 0x20 { throw fail("unescaped control character in string") }
            if c == UInt8(ascii: "\\") {
                if keep { out.append(contentsOf: bytes[runStart..<i]) }
                escaped = true
                try escape(into: &out)
                runStart = i
                continue
            }
            if c < 0x80 {
                i += 1
                continue
            }
            i += try utf8Length(at: i)
        }
    }

    /// The first index from `start` on that is not in a run of 8-byte words of plain string
    /// bytes (ASCII 0x20–0x7F but `"` and `\\`), found a word at a time (SWAR: each test is exact
    /// about whether some byte of the word matches). A log chunk's 87 KB of base64 is one string:
    /// ~2 instructions a byte instead of ~18. The caller goes on byte by byte from there.
    @inline(__always)
    static func plainRun(_ bytes: [UInt8], from start: Int) -> Int {
        guard bytes.count - start >= 8 else { return start }
        return bytes.withUnsafeBytes { raw -> Int in
            let ones: UInt64 = 0x0101_0101_0101_0101
            let high: UInt64 = 0x8080_8080_8080_8080
            var j = start
            while j + 8 <= raw.count {
                let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: j, as: UInt64.self))
                let quote = v ^ (ones &* 0x22)
                let backslash = v ^ (ones &* 0x5c)
                let special =
                    v & high  // non-ASCII
                    | ((v &- ones &* 0x20) & ~v & high)  // a byte below 0x20 (exact: no high bit is set)
                    | ((quote &- ones) & ~quote & high) | ((backslash &- ones) & ~backslash & high)
                if special != 0 { break }
                j += 8
            }
            return j
        }
    }

    /// FNV-1a: a cheap first test for duplicate keys.
    static func hash(_ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// Validates one multi-byte UTF-8 sequence at `at` (no overlongs, no surrogates, ≤ U+10FFFF).
    func utf8Length(at: Int) throws(JSONParseError) -> Int {
        let c = bytes[at]
        let n: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xbf
        switch c {
        case 0xc2...0xdf: n = 2
        case 0xe0:
            n = 3
            lower = 0xa0
        case 0xe1...0xec, 0xee...0xef: n = 3
        case 0xed:
            n = 3
            upper = 0x9f
        case 0xf0:
            n = 4
            lower = 0x90
        case 0xf1...0xf3: n = 4
        case 0xf4:
            n = 4
            upper = 0x8f
        default: throw fail("invalid UTF-8", at: at)
        }
        guard at + n <= bytes.count else { throw fail("invalid UTF-8", at: at) }
        for k in 1..<n {
            let b = bytes[at + k]
            let (lo, hi) = k == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xbf))
            guard b >= lo && b <= hi else { throw fail("invalid UTF-8", at: at) }
        }
        return n
    }

    mutating func escape(into out: inout [UInt8]) throws(JSONParseError) {
        i += 1
        guard i < bytes.count else { throw fail("unterminated escape") }
        let c = bytes[i]
        i += 1
        switch c {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5c)
        case UInt8(ascii: "/"): out.append(0x2f)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0c)
        case UInt8(ascii: "n"): out.append(0x0a)
        case UInt8(ascii: "r"): out.append(0x0d)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xd800...0xdbff).contains(scalar) {
                guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw fail("lone high surrogate in \\u escape")
                }
                i += 2
                let low = try hex4()
                guard (0xdc00...0xdfff).contains(low) else { throw fail("invalid low surrogate in \\u escape") }
                scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
            } else if (0xdc00...0xdfff).contains(scalar) {
                throw fail("lone low surrogate in \\u escape")
            }
            out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
        default:
            throw fail("invalid escape", at: i - 2)
        }
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

// MARK: - Looking up one member without building the document

extension JSON {
    /// The string at `path` (object keys from the top) of a JSON document, found without building
    /// the document: members before it are validated and skipped, and scanning stops at it. nil
    /// when the path is absent, passes through something other than an object, ends at something
    /// other than a string, or the JSON before it is malformed. What follows is not read, so use
    /// it only where that does not matter: choosing the secret that will verify a webhook's bytes.
    /// A repeated key is not seen: the first occurrence is the one found (so use it on bodies
    /// whose decoded reading does not depend on which one wins).
    package static func string(at path: [String], in bytes: [UInt8]) -> String? {
        value(at: path, in: bytes)?.stringValue
    }

    /// The value at `path`, found as `string(at:in:)` finds a string (and parsed whole).
    package static func value(at path: [String], in bytes: [UInt8]) -> JSON? {
        var parser = Parser(bytes: bytes)
        return try? parser.value(at: path.map { Array($0.utf8) }[...])
    }
}

extension Parser {
    mutating func value(at path: ArraySlice<[UInt8]>) throws(JSONParseError) -> JSON? {
        skipSpace()
        guard i < bytes.count else { return nil }
        guard let want = path.first else { return try value() }
        guard bytes[i] == UInt8(ascii: "{") else { return nil }
        try enter()
        i += 1
        var key: [UInt8] = []
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }  // also `{}`
            key.removeAll(keepingCapacity: true)
            let keyStart = i + 1
            let matches =
                try scanString(into: &key, keep: true) ? key == want : bytes[keyStart..<(i - 1)].elementsEqual(want)
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after object key") }
            i += 1
            skipSpace()
            if matches { return try value(at: path.dropFirst()) }
            try skipValue()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }

    /// Moves past one value, validating it as `value()` does but building nothing.
    mutating func skipValue() throws(JSONParseError) {
        guard i < bytes.count else { throw fail("expected a JSON value, found end of input") }
        var scratch: [UInt8] = []
        switch bytes[i] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = bytes[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            try enter()
            i += 1
            skipSpace()
            if i < bytes.count && bytes[i] == close {
                i += 1
                depth -= 1
                return
            }
            while true {
                skipSpace()
                if close == UInt8(ascii: "}") {
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    _ = try scanString(into: &scratch, keep: false)
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                        throw fail("expected ':' after object key")
                    }
                    i += 1
                    skipSpace()
                }
                try skipValue()
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object or array") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == close {
                    i += 1
                    depth -= 1
                    return
                }
                throw fail("expected ',' or a closing bracket")
            }
        case UInt8(ascii: "\""): _ = try scanString(into: &scratch, keep: false)
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try scanNumber()
        default: throw fail("unexpected character; expected a JSON value")
        }
    }
}

// MARK: - Serializing

extension JSON {
    /// Compact JSON, members in stored order.
    package func serialized() -> String { String(decoding: serializedBytes(), as: UTF8.self) }

    package func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [0x6e, 0x75, 0x6c, 0x6c])
        case .bool(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .int(let i): out.append(contentsOf: Array(String(i).utf8))
        case .double(let d):
            if d.isFinite {
                out.append(contentsOf: Array(d.description.utf8))
            } else {
                out.append(contentsOf: Array("null".utf8))
            }
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (n, v) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (n, member) in o.entries.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        let u = Array(s.utf8)
        var k = 0
        while k < u.count {
            let c = u[k]
            switch c {
            case 0x22: out.append(contentsOf: [0x5c, 0x22])
            case 0x5c: out.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5c, UInt8(ascii: "b")])
            case 0x0c: out.append(contentsOf: [0x5c, UInt8(ascii: "f")])
            case 0..<0x20:
                out.append(contentsOf: [
                    0x5c, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(c >> 4)], hexDigits[Int(c & 0xf)],
                ])
            case 0xe2 where k + 2 < u.count && u[k + 1] == 0x80 && (u[k + 2] == 0xa8 || u[k + 2] == 0xa9):
                // U+2028 / U+2029 are valid JSON but break JavaScript string literals.
                out.append(contentsOf: Array((u[k + 2] == 0xa8 ? "\\u2028" : "\\u2029").utf8))
                k += 2
            default: out.append(c)
            }
            k += 1
        }
        out.append(0x22)
    }
}
