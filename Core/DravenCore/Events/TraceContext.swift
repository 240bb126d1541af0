/// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header a caller
/// sends with a request — `version-traceid-parentid-flags`, e.g.
/// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`. A job keeps the one its request
/// came with; its job event, its CloudEvents (the distributed tracing extension) and its
/// pipeline (`TRACEPARENT`) carry it, so a deploy can be followed from the caller into the CI run.
///
/// A header that is not valid is ignored, not refused: tracing is the caller's business and a
/// deploy must not fail over it (the specification says the same: a receiver that cannot parse
/// it starts a new trace).
package enum TraceContext {
    /// The header if it is a valid `traceparent`, else nil. Version `00` must be exactly 55
    /// characters; a later version (not `ff`) is read by its first 55, as the specification asks,
    /// and kept as those (the part this version defines).
    package static func parse(_ header: String?) -> String? {
        guard let header else { return nil }
        let bytes = Array(header.utf8)
        guard bytes.count >= 55 else { return nil }
        let version = bytes[0..<2]
        guard isHex(version), version != [0x66, 0x66] else { return nil }  // "ff" is invalid
        if version == [0x30, 0x30] {
            guard bytes.count == 55 else { return nil }
        } else if bytes.count > 55 && bytes[55] != UInt8(ascii: "-") {
            return nil
        }
        let dash = UInt8(ascii: "-")
        guard bytes[2] == dash, bytes[35] == dash, bytes[52] == dash else { return nil }
        let trace = bytes[3..<35]
        let parent = bytes[36..<52]
        let flags = bytes[53..<55]
        guard isHex(trace), isHex(parent), isHex(flags) else { return nil }
        guard trace.contains(where: { $0 != 0x30 }), parent.contains(where: { $0 != 0x30 }) else { return nil }
        return String(decoding: bytes[0..<55], as: UTF8.self)
    }

    /// Lowercase hex only: the specification's `HEXDIGLC`.
    private static func isHex(_ s: ArraySlice<UInt8>) -> Bool {
        s.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
