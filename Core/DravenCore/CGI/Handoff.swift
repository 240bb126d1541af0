internal import Glibc

/// Hands the outbox rows a finished function committed to a deliverer (DESIGN.md, outbox). The
/// function has already answered and closed stdout and stderr.
///
/// - While `draven sweep --every` runs, it is bound to `Paths.deliverSocket` and delivers the rows
///   at once from its warm process (`nudge`: one datagram of row ids, a few microseconds). That
///   saves each delivery the ~8 ms a new process pays to load libcurl's ~30 libraries, on the path
///   from one step's end to the next step's dispatch (README, "Deploy plans").
/// - Otherwise (no service, a full queue, another user's socket) the process becomes
///   `draven-deliver` for the rows (`execDeliver`).
///
/// Either way a row is delivered by whoever claims it first (`Delivery`), so a lost datagram
/// or a second deliverer changes nothing; if neither runs, the rows stay due and the next
/// `draven sweep` pass delivers them.
enum Handoff {
    /// Sends `ids` to the delivery service as one datagram ("1 2 3"), without waiting.
    /// - Returns: whether the service took it; false when nothing is bound to `socket` (or it
    ///   is full, or not ours): then the caller delivers the rows itself.
    static func nudge(_ ids: [Int64], socket path: String) -> Bool {
        LocalDatagram.send(Array(ids.map { String($0) }.joined(separator: " ").utf8), to: path) == .taken
    }

    /// Replaces this process with `draven-deliver` for `ids`. The deliverer gets /dev/null for
    /// its standard streams and only draven's own settings in its environment (never the
    /// request's headers, which may carry tokens). If the exec fails, the rows stay due.
    static func execDeliver(_ ids: [Int64]) {
        let path = Environment.get("DRAVEN_DELIVER") ?? siblingExecutable("draven-deliver")
        close(0)
        for _ in 0..<3 { _ = open("/dev/null", O_RDWR) }  // fds 0, 1, 2
        let args = [path] + ids.map { String($0) }
        let env = passed.compactMap { name in Environment.get(name).map { "\(name)=\($0)" } }
        withCStrings(args) { argv in
            withCStrings(env) { envp in _ = execve(path, argv, envp) }
        }
        // Still here: exec failed. Nobody is listening; sweep will deliver.
    }

    /// Variables the deliverer may see.
    static let passed = [
        "DRAVEN_STATE_DIR", "DRAVEN_SECRETS_DIR", "DRAVEN_SECRETS_KEK_FILE", "CREDENTIALS_DIRECTORY",
        "DRAVEN_DISPATCH_MAX_ATTEMPTS", "DRAVEN_NOW", "PATH",
    ]

    /// `<directory of this executable>/<name>`.
    static func siblingExecutable(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return name }
        let exe = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/" + name
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R)
        -> R
    {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
