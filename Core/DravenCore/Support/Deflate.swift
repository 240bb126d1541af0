internal import CZlib

/// zlib's one-shot deflate and inflate (RFC 1950/1951 through `compress2` and `uncompress`,
/// https://zlib.net/manual.html), for archived job logs (`JobLogs`). A chunk is at most 64 KiB,
/// so whole buffers are enough: no streams, no state kept between calls.
package enum Deflate {
    /// zlib's default level: archived logs are compressed by `draven sweep`, off the request path.
    package static let level: Int32 = 6

    /// `bytes` compressed (zlib format), or nil when compressing does not make them smaller.
    package static func compress(_ bytes: [UInt8], level: Int32 = Deflate.level) -> [UInt8]? {
        guard !bytes.isEmpty else { return nil }
        var length = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let rc = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in
                compress2(o.baseAddress, &length, i.baseAddress, uLong(i.count), level)
            }
        }
        guard rc == Z_OK, Int(length) < bytes.count else { return nil }
        out.removeSubrange(Int(length)...)
        return out
    }

    /// `data` inflated to exactly `size` bytes, or nil when it is not a zlib stream of that size.
    package static func decompress(_ data: [UInt8], size: Int) -> [UInt8]? {
        guard size > 0 else { return data.isEmpty ? [] : nil }
        var length = uLong(size)
        var out = [UInt8](repeating: 0, count: size)
        let rc = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { i in uncompress(o.baseAddress, &length, i.baseAddress, uLong(i.count)) }
        }
        guard rc == Z_OK, Int(length) == size else { return nil }
        return out
    }
}
