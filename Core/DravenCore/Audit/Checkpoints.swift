internal import Glibc

/// Where the audit trail's checkpoint key and log live: the admin side, beside the secrets signing
/// key (`<secrets-dir>`, `/var/lib/draven-secrets` in production), which the functions can read
/// but not write.
///
/// - `audit-signing.key`: `drvsig1:<base64 Ed25519 secret key>`, 0600, admin only.
/// - `audit.pub`: `drvpub1:<kid>:<base64 public key>`, 0644 (anyone may verify).
/// - `audit.checkpoints`: the append-only log of signed checkpoints, one line each, 0644; the
///   last line is the latest, the lines before it the history.
package struct CheckpointPaths: Sendable {
    package var dir: String
    package var signingKey: String { dir + "/audit-signing.key" }
    package var publicKey: String { dir + "/audit.pub" }
    package var log: String { dir + "/audit.checkpoints" }

    package init(_ paths: Paths) { dir = paths.secretsDir }

    /// Whether this process may write checkpoints (reads the key and can append to the log).
    package var writable: Bool {
        access(signingKey, R_OK) == 0 && (access(log, F_OK) == 0 ? access(log, W_OK) == 0 : access(dir, W_OK) == 0)
    }
}

/// A signed statement of the audit chain's head:
/// `drvckpt1 <head id> <head hash> <record count> <unix time> <key id> <base64 signature>`, the
/// signature being Ed25519 over `"drv-ckpt/v1\0" ‖ "<head id> <head hash> <count> <time> <key id>"`.
/// The time is the wall clock (never `DRAVEN_NOW`). An empty chain's head is id 0 and the genesis hash.
package struct AuditCheckpoint: Sendable, Equatable {
    package var headID: Int64
    package var headHash: String
    package var count: Int64
    package var at: Int64
    package var kid: String
    package var signature: [UInt8] = []

    var statement: String { "\(headID) \(headHash) \(count) \(at) \(kid)" }
    package var line: String { "drvckpt1 \(statement) \(SecretsCrypto.base64(signature))" }

    static func signedMessage(_ statement: String) -> [UInt8] { Array("drv-ckpt/v1\0".utf8) + Array(statement.utf8) }

    /// Parses a line's structure (the signature is checked by `verifies`).
    static func parse(_ line: Substring) -> AuditCheckpoint? {
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count == 7, f[0] == "drvckpt1", let id = Int64(f[1]), id >= 0, f[2].utf8.count == 64,
            let count = Int64(f[3]), count >= 0, let at = Int64(f[4]), f[5].utf8.count == 16,
            let sig = SecretsCrypto.base64Decode(Array(f[6].utf8)), sig.count == 64
        else { return nil }
        return AuditCheckpoint(
            headID: id, headHash: String(f[2]), count: count, at: at, kid: String(f[5]),
            signature: sig)
    }

    func verifies(_ keys: SignerKeys) -> Bool {
        guard let kid = Hex.decode(kid), let pk = keys[kid] else { return false }
        return SecretsCrypto.verify(signature: signature[...], message: Self.signedMessage(statement), publicKey: pk)
    }
}

/// Writing and reading checkpoints (`draven init`, `draven audit checkpoint`, `draven sweep`);
/// `AuditVerifier` checks the chain against them.
package enum AuditCheckpoints {
    package enum Outcome {
        /// Appended to the log; `journaled` when the system log took a copy.
        case written(AuditCheckpoint, journaled: Bool)
        /// The head has not moved since the latest checkpoint (only with `onlyIfMoved`).
        case unchanged(AuditCheckpoint)
        /// The chain since the latest checkpoint does not verify: nothing was signed.
        case refused([AuditFinding])
    }

    /// Creates the key pair when there is no key. - Returns: whether it was created.
    package static func ensureKey(_ paths: CheckpointPaths) throws -> Bool {
        guard access(paths.signingKey, F_OK) != 0 else { return false }
        let (pk, sk) = SecretsCrypto.signingKeyPair()
        var text = sk.withUnsafeBytes { Array(("drvsig1:" + SecretsCrypto.base64(Array($0)) + "\n").utf8) }
        defer { Sodium.wipe(&text) }
        try KeyFiles.create(paths.signingKey, text, mode: 0o600)
        unlink(paths.publicKey)
        let kid = Hex.encode(KeyFiles.signerKID(pk))
        try KeyFiles.create(paths.publicKey, Array("drvpub1:\(kid):\(SecretsCrypto.base64(pk))\n".utf8), mode: 0o644)
        return true
    }

    /// The latest checkpoint that verifies, and what is wrong with the log, if anything (a last
    /// line that does not verify, a log others can write, no public key). Reads only the log's
    /// tail. An unterminated last line (a write cut short) is skipped without complaint.
    package static func latest(_ paths: CheckpointPaths) -> (AuditCheckpoint?, problems: [String]) {
        guard access(paths.log, F_OK) == 0 else { return (nil, []) }
        let keys: SignerKeys
        do { keys = try KeyFiles.publicKeys(paths.publicKey) } catch {
            return (nil, ["cannot read the checkpoint public key: \(error)"])
        }
        let tail: [UInt8]
        do { tail = try readTail(paths.log, bytes: 16 << 10) } catch {
            return (nil, ["cannot read \(paths.log): \(error)"])
        }
        var lines = tail.split(separator: 10, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() } else if !lines.isEmpty { lines.removeLast() }  // torn
        var problems: [String] = []
        for (n, raw) in lines.reversed().enumerated() where !raw.isEmpty {
            if n == lines.count - 1 && tail.count == 16 << 10 { break }  // the first line may be cut by the tail
            if let cp = AuditCheckpoint.parse(Substring(decoding: raw, as: UTF8.self)), cp.verifies(keys) {
                return (cp, problems)
            }
            if problems.isEmpty {
                problems.append("the latest line of \(paths.log) is not a checkpoint signed by \(paths.publicKey)")
            }
        }
        return (nil, problems)
    }

    /// Checks the chain since the latest checkpoint, then signs its head and appends it to the log
    /// and the system log. Refuses (signs nothing) when the check finds anything.
    package static func write(_ db: Database, _ paths: CheckpointPaths, onlyIfMoved: Bool = false) throws -> Outcome {
        let report = try AuditVerifier.report(db: db, checkpoints: paths, sinceCheckpoint: true)
        guard report.findings.isEmpty else { return .refused(report.findings) }
        if onlyIfMoved, let cp = report.checkpoint, cp.headID == report.headID, cp.headHash == report.headHash {
            return .unchanged(cp)
        }
        let sk = try KeyFiles.secretKey(paths.signingKey, prefix: "drvsig1:", length: 64, what: "audit checkpoint key")
        let pk = sk.withUnsafeBytes { Array($0[32..<64]) }
        var cp = AuditCheckpoint(
            headID: report.headID, headHash: report.headHash, count: report.records,
            at: Int64(time(nil)), kid: Hex.encode(KeyFiles.signerKID(pk)))
        let message = AuditCheckpoint.signedMessage(cp.statement)
        cp.signature = sk.withUnsafeBytes { SecretsCrypto.sign(message, secretKey: $0) }
        try append(paths.log, cp.line)
        return .written(cp, journaled: Journal.send(cp.line))
    }

    /// Appends one line with a single write (O_APPEND), after a newline if the file lacks one.
    static func append(_ path: String, _ line: String) throws(SecretsError) {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw .invalid("cannot open \(path) (errno \(errno))") }
        defer { close(fd) }
        var text = Array((line + "\n").utf8)
        var last: UInt8 = 10
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 && pread(fd, &last, 1, size - 1) == 1 && last != 10 { text.insert(10, at: 0) }
        let n = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == text.count, fsync(fd) == 0 else { throw .invalid("cannot append to \(path)") }
    }

    /// The last `bytes` bytes of a file that group and others cannot write.
    static func readTail(_ path: String, bytes: Int) throws(SecretsError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .badPermissions(path: path, reason: "cannot open (errno \(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw .badPermissions(path: path, reason: "not a regular file")
        }
        guard st.st_mode & 0o022 == 0 else { throw .badPermissions(path: path, reason: "group or others can write it") }
        let start = max(0, Int(st.st_size) - bytes)
        var out = [UInt8](repeating: 0, count: Int(st.st_size) - start)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard n == out.count else { throw .tampered("\(path) changed while being read") }
        return out
    }
}

/// The system log: one syslog datagram (RFC 3164 framing, facility authpriv, level notice) to
/// `/dev/log`, which journald serves where it runs; `DRAVEN_SYSLOG_SOCKET` names another socket.
/// Never fails: with no listener the line is simply not sent.
package enum Journal {
    @discardableResult
    package static func send(_ message: String, tag: String = "draven-audit") -> Bool {
        let path = Array((Environment.get("DRAVEN_SYSLOG_SOCKET") ?? "/dev/log").utf8)
        var addr = sockaddr_un()
        guard path.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let datagram = Array("<85>\(tag)[\(getpid())]: \(message)".utf8)
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let sent = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                datagram.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), sa, length) }
            }
        }
        return sent == datagram.count
    }
}
