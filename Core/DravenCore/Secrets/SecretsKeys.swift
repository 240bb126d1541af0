internal import Glibc

/// Where the secrets store and its keys live, and how they are read.
///
/// - store: `<secrets-dir>/secrets.dsb` (writable only by the admin; functions read it)
/// - public keys: `<secrets-dir>/secrets.pub` (`drvpub1:<kid>:<base64>` per line; two during rotation)
/// - master key (opens the data key), first found of: `$CREDENTIALS_DIRECTORY/draven-secrets-kek`
///   (systemd `LoadCredential=`), `$DRAVEN_SECRETS_KEK_FILE`, `<secrets-dir>/secrets.kek`.
///   Content `drvkek1:<base64 of 32 bytes>`; refused unless a regular file that group/others
///   cannot write and others cannot read (0400/0440/0600/0640).
/// - generation floor: `<secrets-dir>/secrets.floor` (admin-signed; see `GenerationFloor`)
/// - signing key: `<secrets-dir>/signing.key` (`drvsig1:…`, 0400/0600, admin only; functions
///   never need it).
package struct SecretsPaths: Sendable {
    package var dir: String
    package var store: String { dir + "/secrets.dsb" }
    package var publicKeys: String { dir + "/secrets.pub" }
    package var signingKey: String { dir + "/signing.key" }
    package var floor: String { dir + "/secrets.floor" }
    package var lock: String { dir + "/secrets.lock" }
    package var defaultKEK: String { dir + "/secrets.kek" }

    package init(_ paths: Paths) { dir = paths.secretsDir }

    /// The master key file to use.
    package var kek: String {
        if let creds = Environment.get("CREDENTIALS_DIRECTORY"), access(creds + "/draven-secrets-kek", F_OK) == 0 {
            return creds + "/draven-secrets-kek"
        }
        return Environment.get("DRAVEN_SECRETS_KEK_FILE") ?? defaultKEK
    }
}

enum KeyFiles {
    /// Reads a whole file after checking it is a regular file within `maxBytes` and that its
    /// mode has none of `forbidden` bits.
    static func read(_ path: String, forbidden: mode_t, maxBytes: Int, what: String) throws(SecretsError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { throw .missing("\(what) \(path) does not exist; run `draven secrets init`") }
            throw .badPermissions(path: path, reason: "cannot open \(what) (errno \(errno))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw .badPermissions(path: path, reason: "\(what) is not a regular file")
        }
        guard st.st_mode & forbidden == 0 else {
            throw .badPermissions(
                path: path,
                reason: "\(what) has mode \(String(st.st_mode & 0o777, radix: 8)); it must not be "
                    + (forbidden & 0o004 != 0
                        ? "readable by others or writable by group/others" : "writable by group or others"))
        }
        guard Int(st.st_size) <= maxBytes else { throw .tampered("\(what) is larger than \(maxBytes) bytes") }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        while got < out.count {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            got += n
        }
        guard got == out.count else { throw .tampered("\(what) changed while being read") }
        return out
    }

    /// Reads `prefix<base64>` from a secret key file into a `SecretBytes` of `length` bytes.
    static func secretKey(_ path: String, prefix: String, length: Int, what: String) throws(SecretsError) -> SecretBytes
    {
        var raw = try read(path, forbidden: 0o027, maxBytes: 1024, what: what)
        defer { Sodium.wipe(&raw) }
        var text = raw[...]
        while let last = text.last, last == 10 || last == 13 || last == 32 { text = text.dropLast() }
        let p = Array(prefix.utf8)
        guard text.starts(with: p), var key = SecretsCrypto.base64Decode(text.dropFirst(p.count)), key.count == length
        else {
            throw .invalid("\(path) is not a \(what) (expected \(prefix)<base64 of \(length) bytes>)")
        }
        defer { Sodium.wipe(&key) }
        return SecretBytes(copying: key, label: what)
    }

    /// The pinned signer public keys, by key id.
    static func publicKeys(_ path: String) throws(SecretsError) -> SignerKeys {
        let raw = try read(path, forbidden: 0o022, maxBytes: 4096, what: "secrets public key file")
        var keys = SignerKeys()
        for line in raw.split(separator: 10) where !line.isEmpty && line.first != UInt8(ascii: "#") {
            let parts = line.split(separator: UInt8(ascii: ":"))
            guard parts.count == 3, Array(parts[0]) == Array("drvpub1".utf8),
                let kid = Hex.decode(String(decoding: parts[1], as: UTF8.self)), kid.count == 8,
                let pk = SecretsCrypto.base64Decode(parts[2]), pk.count == 32, signerKID(pk) == kid
            else { throw .invalid("\(path): a line is not drvpub1:<kid>:<base64 public key>") }
            keys.add(kid: kid, publicKey: pk)
        }
        guard !keys.isEmpty else { throw .invalid("\(path) holds no public key") }
        return keys
    }

    static func signerKID(_ publicKey: [UInt8]) -> [UInt8] {
        Array(SecretsCrypto.hash(publicKey, length: 16).prefix(8))
    }

    static func kekID(_ kek: SecretBytes) -> [UInt8] {
        kek.withUnsafeBytes { Array(SecretsCrypto.hash(Array("drv-kid".utf8), key: $0, length: 16).prefix(8)) }
    }

    /// Writes `contents` to a new file with `mode` (refuses to overwrite).
    static func create(_ path: String, _ contents: [UInt8], mode: mode_t) throws(SecretsError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            throw .invalid(errno == EEXIST ? "\(path) already exists" : "cannot create \(path) (errno \(errno))")
        }
        defer { close(fd) }
        fchmod(fd, mode)
        let n = contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == contents.count, fsync(fd) == 0 else { throw .invalid("cannot write \(path)") }
    }
}

/// Pinned signer public keys by key id: a handful at most, so a list (a `[[UInt8]: [UInt8]]`
/// costs every request a generic-metadata instantiation of ~0.2 M instructions at start-up).
struct SignerKeys {
    private var keys: [(kid: [UInt8], publicKey: [UInt8])] = []

    init() {}
    init(kid: [UInt8], publicKey: [UInt8]) { add(kid: kid, publicKey: publicKey) }

    var isEmpty: Bool { keys.isEmpty }
    var kids: [[UInt8]] { keys.map(\.kid) }

    mutating func add(kid: [UInt8], publicKey: [UInt8]) {
        keys.removeAll { $0.kid == kid }
        keys.append((kid, publicKey))
    }

    subscript(kid: [UInt8]) -> [UInt8]? { keys.first { $0.kid == kid }?.publicKey }
}
