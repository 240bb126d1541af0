internal import Glibc

/// A Unix datagram socket at a path: what `Handoff.nudge` sends the delivery service and what
/// `draven sweep --every` binds (CLI/draven/DeliveryService.swift).
package enum LocalDatagram {
    package enum Sent: Equatable { case taken, full, nobody }

    /// Sends `bytes` as one datagram to `path` without blocking: `taken`, `full` (the receiver's
    /// queue is full), or `nobody` (no such socket, nothing bound to it, not ours, path too long).
    package static func send(_ bytes: [UInt8], to path: String) -> Sent {
        guard var address = address(path) else { return .nobody }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .nobody }
        defer { close(fd) }
        let sent = withSockaddr(&address) { sendto(fd, bytes, bytes.count, 0, $0, length) }
        if sent == bytes.count { return .taken }
        return errno == EAGAIN ? .full : .nobody
    }

    /// A socket bound to `path`, created with mode 0600 (only this user may send to it), after
    /// removing a socket file nothing is bound to; nil when `path` is served already or cannot
    /// be bound (`error` says why). Blocking reads; closed on exec.
    package static func bind(_ path: String) -> (fd: Int32?, error: String?) {
        guard var address = address(path) else { return (nil, "the path is too long for a socket") }
        if send([], to: path) != .nobody { return (nil, "another process serves it") }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (nil, String(cString: strerror(errno))) }
        let mask = umask(0o177)
        let bound = withSockaddr(&address) { Glibc.bind(fd, $0, length) }
        umask(mask)
        guard bound == 0 else {
            let error = String(cString: strerror(errno))
            close(fd)
            return (nil, error)
        }
        return (fd, nil)
    }

    /// Reads one datagram (at most `buffer.count` bytes); nil when the socket failed.
    package static func receive(_ fd: Int32, into buffer: inout [UInt8]) -> ArraySlice<UInt8>? {
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n >= 0 { return buffer[..<n] }
            if errno != EINTR { return nil }
        }
    }

    private static let length = socklen_t(MemoryLayout<sockaddr_un>.size)

    private static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    private static func withSockaddr<R>(_ address: inout sockaddr_un, _ body: (UnsafePointer<sockaddr>) -> R) -> R {
        withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
}
