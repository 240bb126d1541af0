internal import CSodium
internal import Synchronization

/// A secret value in memory, in locked memory behind guard pages and excluded from core dumps
/// (`sodium_malloc`), zeroed in `deinit`. Small values share one per-process `SecureArena`
/// (a request holds three or four secrets; a `sodium_malloc` per value cost ~11 system calls
/// each way, ~0.1 ms per request); larger ones, or any once the arena is full, get their own
/// allocation. Lent only through `withUnsafeBytes`; never printed
/// (`description` is `<redacted NAME>`, the mirror has no children), not Equatable or Codable.
package final class SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let base: UnsafeMutableRawPointer
    package let count: Int
    package let label: String

    /// Allocates `count` bytes and lets `fill` write them.
    package init(count: Int, label: String, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(sodium_init() >= 0)
        guard let p = SecureArena.shared.allocate(max(count, 1)) ?? sodium_malloc(max(count, 1)) else {
            fatalError("sodium_malloc failed")
        }
        self.base = p
        self.count = count
        self.label = label
        do {
            try fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            Self.release(p, count: count)
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

    deinit { Self.release(base, count: count) }

    private static func release(_ p: UnsafeMutableRawPointer, count: Int) {
        if !SecureArena.shared.release(p, count: max(count, 1)) {
            sodium_free(p)  // zeroes before freeing
        }
    }

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

/// One `sodium_malloc` region (locked, guard pages before and after, not in core dumps) from
/// which small secrets are carved, bump-style. Slots are zeroed when their `SecretBytes` ends
/// but not reused: a CGI process holds a handful; a long-running one (`draven sweep`) falls back
/// to a `sodium_malloc` per value once the region is used up. The region lives as long as the
/// process.
final class SecureArena: Sendable {
    static let shared = SecureArena(size: 8192)

    private nonisolated(unsafe) let base: UnsafeMutableRawPointer?
    private let size: Int
    private let used = Mutex(0)

    init(size: Int) {
        precondition(sodium_init() >= 0)
        self.base = sodium_malloc(size)
        self.size = base == nil ? 0 : size
    }

    /// `count` bytes, 16-byte aligned, or nil when the region is full.
    func allocate(_ count: Int) -> UnsafeMutableRawPointer? {
        guard let base, count <= 1024 else { return nil }
        let rounded = (count + 15) & ~15
        let offset = used.withLock { used -> Int? in
            guard used + rounded <= size else { return nil }
            defer { used += rounded }
            return used
        }
        return offset.map { base + $0 }
    }

    func owns(_ p: UnsafeMutableRawPointer) -> Bool {
        guard let base else { return false }
        return p >= base && p < base + size
    }

    /// Zeroes a slot this arena handed out; false (and nothing done) for any other pointer.
    func release(_ p: UnsafeMutableRawPointer, count: Int) -> Bool {
        guard owns(p) else { return false }
        sodium_memzero(p, count)
        return true
    }
}
