internal import CSodium

/// A secret value in memory: one `sodium_malloc` allocation (guard pages, excluded from core
/// dumps), zeroed and freed in `deinit`. Lent only through `withUnsafeBytes`; never printed
/// (`description` is `<redacted NAME>`, the mirror has no children), not Equatable or Codable.
package final class SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let base: UnsafeMutableRawPointer
    package let count: Int
    package let label: String

    /// Allocates `count` bytes and lets `fill` write them.
    package init(count: Int, label: String, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(sodium_init() >= 0)
        guard let p = sodium_malloc(max(count, 1)) else { fatalError("sodium_malloc failed") }
        self.base = p
        self.count = count
        self.label = label
        do {
            try fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            sodium_free(p)
            throw error
        }
    }

    /// Copies `bytes` in; the caller wipes its own copy.
    package convenience init(copying bytes: UnsafeRawBufferPointer, label: String) {
        self.init(count: bytes.count, label: label) { $0.copyMemory(from: bytes) }
    }

    package convenience init(copying bytes: [UInt8], label: String) {
        self.init(count: bytes.count, label: label) { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
    }

    deinit { sodium_free(base) }  // sodium_free zeroes before freeing

    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Constant-time comparison with `other` (`sodium_memcmp`); lengths are compared first.
    package func constantTimeEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == count else { return false }
        return count == 0 || sodium_memcmp(base, other.baseAddress!, count) == 0
    }

    /// The value as UTF-8 text, for the moment it must be placed into a request. The caller
    /// owns the copy; keep its lifetime short.
    package func utf8() -> String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    package var description: String { "<redacted \(label)>" }
    package var debugDescription: String { description }
    package var customMirror: Mirror { Mirror(self, children: [:]) }
}
