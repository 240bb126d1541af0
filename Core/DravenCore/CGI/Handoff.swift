internal import Glibc

/// Replaces the finished function's process with `draven-deliver` for the outbox rows it
/// committed (DESIGN.md, outbox). The function has already answered and closed stdout and
/// stderr; the deliverer gets /dev/null for its standard streams and only draven's own
/// settings in its environment (never the request's headers, which may carry tokens). If the
/// exec fails, the rows stay due and `draven sweep` delivers them.
enum Handoff {
    /// Variables the deliverer may see.
    static let passed = [
        "DRAVEN_STATE_DIR", "DRAVEN_SECRETS_DIR", "DRAVEN_SECRETS_KEK_FILE", "CREDENTIALS_DIRECTORY",
        "DRAVEN_DISPATCH_MAX_ATTEMPTS", "DRAVEN_NOW", "PATH",
    ]

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
