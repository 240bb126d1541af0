internal import Glibc

/// Owns the `api_tokens` table. API tokens: `drv_<public id>_<secret>`. The public id finds
/// the row; the whole token's keyed BLAKE2b hash (key: `Paths.tokenKey`, kept outside the
/// database) is stored and compared in constant time. The plaintext is shown once, at
/// creation, and never stored or logged.
package enum Tokens {
    package static let prefix = "drv_"

    /// A newly created token. `plaintext` is for printing once.
    package struct Created {
        package var id: Int64
        package var publicID: String
        package var plaintext: String
    }

    /// A new bearer secret as every kind of draven credential spells it (API tokens, console
    /// sessions, sign-in links): `prefix` + a public id (6 random bytes, hex) + `_` + 32 random
    /// bytes (base64url). The public id names the row; only a keyed hash of the whole is stored.
    static func mint(prefix: String) -> (publicID: String, secret: String) {
        let publicID = Hex.encode(Sodium.randomBytes(6))
        var secret = Sodium.randomBytes(32)
        let credential = prefix + publicID + "_" + Sodium.base64URL(secret)
        Sodium.wipe(&secret)
        return (publicID, credential)
    }

    /// The public id a presented credential of `mint`'s shape names, or nil when it does not
    /// have that shape (wrong prefix, 200 bytes or more, no `_`): nothing is looked up for it.
    static func publicID(of credential: String, prefix: String) -> String? {
        guard credential.hasPrefix(prefix), credential.utf8.count < 200 else { return nil }
        let rest = credential.dropFirst(prefix.count)
        guard let underscore = rest.firstIndex(of: "_") else { return nil }
        return String(rest[..<underscore])
    }

    package static func create(
        _ tx: Transaction, person: String, name: String, key: [UInt8],
        now: Int64
    ) throws -> Created {
        guard let personID = try People.enabledID(tx.db, handle: person) else {
            throw DravenError.notFound(what: "no person \(person) in the applied configuration")
        }
        let (publicID, plaintext) = Tokens.mint(prefix: prefix)
        let id =
            try tx.db.first(
                "INSERT INTO api_tokens (public_id, person_id, name, hash, created_at) "
                    + "VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                [
                    .text(publicID), .int(personID), .text(name),
                    .blob(Sodium.keyedHash(plaintext.utf8, key: key)), .int(now),
                ]
            ) { $0.int(0) } ?? 0
        try Audit.record(
            tx, at: now, actor: "cli", action: "token.create", subject: person,
            detail: ["token": .string(publicID), "name": .string(name)])
        return Created(id: id, publicID: publicID, plaintext: plaintext)
    }

    /// The person a presented token belongs to, or nil for an unknown, revoked or malformed
    /// token, or one whose person is disabled.
    package static func verify(_ db: Database, token: String, key: [UInt8]) throws -> Principal? {
        let utf8 = Array(token.utf8)
        guard let publicID = Tokens.publicID(of: token, prefix: prefix) else { return nil }
        let row = try db.first(
            """
            SELECT t.id, t.hash, p.id, p.handle FROM api_tokens t JOIN people p ON p.id = t.person_id
            WHERE t.public_id = ?1 AND t.revoked_at IS NULL AND p.disabled = 0
            """, [.text(publicID)]
        ) { ($0.int(0), $0.blob(1), $0.int(2), $0.text(3)) }
        // Hash even when the id is unknown, so both paths take the same time.
        let presented = Sodium.keyedHash(utf8, key: key)
        guard let row, Sodium.constantTimeEquals(presented, row.1) else { return nil }
        return Principal(personID: row.2, handle: row.3, tokenID: row.0)
    }

    /// One issued token as `draven tokens list` shows it (never its value).
    package struct Listed: Sendable {
        package var publicID: String
        package var person: String
        package var name: String
        package var createdAt: Int64
        package var revokedAt: Int64?
    }

    /// Every token issued, oldest first.
    package static func list(_ db: Database) throws -> [Listed] {
        try db.query(
            """
            SELECT t.public_id, p.handle, t.name, t.created_at, t.revoked_at FROM api_tokens t
            JOIN people p ON p.id = t.person_id ORDER BY t.id
            """
        ) {
            Listed(
                publicID: $0.text(0), person: $0.text(1), name: $0.text(2), createdAt: $0.int(3),
                revokedAt: $0.optionalInt(4))
        }
    }

    /// Revokes the active token `publicID`, audited. Returns false when there is no such active token.
    package static func revoke(_ tx: Transaction, publicID: String, actor: String, now: Int64) throws -> Bool {
        let revoked =
            try tx.db.first(
                """
                UPDATE api_tokens SET revoked_at = ?2 WHERE public_id = ?1 AND revoked_at IS NULL RETURNING id
                """, [.text(publicID), .int(now)]
            ) { _ in true } ?? false
        guard revoked else { return false }
        try Audit.record(tx, at: now, actor: actor, action: "token.revoke", subject: "token/\(publicID)")
        return true
    }

    /// Reads the token-hash key (32 bytes).
    /// - Throws: `DravenError.storeNotReady` when it is missing or the wrong size.
    package static func loadKey(_ paths: Paths) throws -> [UInt8] {
        let fd = open(paths.tokenKey, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DravenError.storeNotReady("the token key is missing; run `draven init`") }
        defer { close(fd) }
        var key = [UInt8](repeating: 0, count: 33)
        let n = key.withUnsafeMutableBytes { read(fd, $0.baseAddress, 33) }
        guard n == 32 else { throw DravenError.storeNotReady("the token key is not 32 bytes") }
        key.removeLast()
        return key
    }

    /// Creates the token key if it does not exist (mode 0640). Returns true when it created one.
    @discardableResult
    package static func ensureKey(_ paths: Paths) throws -> Bool {
        if access(paths.tokenKey, F_OK) == 0 { return false }
        var key = Sodium.randomBytes(32)
        defer { Sodium.wipe(&key) }
        let fd = open(paths.tokenKey, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DravenError.storeNotReady("cannot create \(paths.tokenKey): errno \(errno)") }
        defer { close(fd) }
        let n = key.withUnsafeBytes { write(fd, $0.baseAddress, 32) }
        guard n == 32 else { throw DravenError.storeNotReady("cannot write \(paths.tokenKey)") }
        return true
    }
}

/// An authenticated caller.
package struct Principal: Sendable, Equatable {
    package var personID: Int64
    package var handle: String
    package var tokenID: Int64

    package init(personID: Int64, handle: String, tokenID: Int64) {
        self.personID = personID
        self.handle = handle
        self.tokenID = tokenID
    }
}
