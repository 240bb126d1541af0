/// Little-endian, bounds-checked encoding for the secrets file format.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func raw(_ b: some Collection<UInt8>) { bytes.append(contentsOf: b) }
    mutating func string16(_ s: String) {
        u16(UInt16(s.utf8.count))
        raw(Array(s.utf8))
    }
}

struct ByteReader {
    let bytes: ArraySlice<UInt8>
    var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    mutating func take(_ n: Int) throws(SecretsError) -> ArraySlice<UInt8> {
        guard n >= 0, index + n <= bytes.endIndex else { throw .tampered("truncated") }
        defer { index += n }
        return bytes[index..<index + n]
    }
    mutating func u8() throws(SecretsError) -> UInt8 { try take(1).first! }
    mutating func u16() throws(SecretsError) -> UInt16 { try take(2).reversed().reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32() throws(SecretsError) -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws(SecretsError) -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func i64() throws(SecretsError) -> Int64 { Int64(bitPattern: try u64()) }
    mutating func string16() throws(SecretsError) -> String {
        let n = Int(try u16())
        let b = try take(n)
        guard let s = String(validating: b, as: UTF8.self) else { throw .tampered("a name is not UTF-8") }
        return s
    }
    var atEnd: Bool { index == bytes.endIndex }
}
