/// Owns the `sessions` table: the web console's signed-in browsers. A session's secret is the
/// cookie value `drs_<public id>_<secret>`; only its keyed BLAKE2b hash is stored (key:
/// `Paths.tokenKey`, as for API tokens), found by the public id and compared in constant time. A
/// session ends when unused for `idleSeconds` (8 h), at the latest `lifetimeSeconds` (7 d) after
/// it began, when revoked (`draven sessions revoke`, sign-out), or when its person is disabled.
/// The console's CSRF token is a keyed hash of the cookie value too, so it is bound to the
/// session and never stored.
package enum Sessions {
    package static let prefix = "drs_"
    package static let idleSeconds: Int64 = 8 * 3600
    package static let lifetimeSeconds: Int64 = 7 * 24 * 3600
    /// `last_seen_at` is written at most this often, so most page views write nothing.
    package static let touchSeconds: Int64 = 60

    /// How a session was made.
    package enum Method: String, Sendable { case token, link, proxy }

    /// A new session; `cookie` is the value to set, never stored or logged.
    package struct Created {
        package var id: Int64
        package var publicID: String
        package var cookie: String
    }

    /// A live session as a request presents it.
    package struct Live: Sendable {
        package var id: Int64
        package var publicID: String
        package var principal: Principal
        package var lastSeen: Int64
        /// The session's CSRF token (hex of a keyed hash of the cookie value).
        package var csrf: String
    }

    /// Starts a session for `personID`, audited as `console.sign-in` (`detail.via = console`).
    package static func create(
        _ tx: Transaction, personID: Int64, handle: String, method: Method, remote: String, key: [UInt8],
        now: Int64
    ) throws -> Created {
        let (publicID, cookie) = Tokens.mint(prefix: prefix)
        let id =
            try tx.db.first(
                """
                INSERT INTO sessions (public_id, hash, person_id, created_at, last_seen_at, idle_s, expires_at, method,
                                      remote)
                VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8) RETURNING id
                """,
                [
                    .text(publicID), .blob(Sodium.keyedHash(cookie.utf8, key: key)), .int(personID), .int(now),
                    .int(idleSeconds), .int(now + lifetimeSeconds), .text(method.rawValue), .text(remote),
                ]
            ) { $0.int(0) } ?? 0
        try Audit.record(
            tx, at: now, actor: handle, action: "console.sign-in", subject: "session/\(publicID)",
            detail: ["via": "console", "method": .string(method.rawValue), "remote": .string(remote)])
        return Created(id: id, publicID: publicID, cookie: cookie)
    }

    /// The live session a cookie value names, or nil (unknown, malformed, revoked, idle too long,
    /// past its lifetime, or its person disabled). Reads only: see `touch`.
    package static func verify(_ db: Database, cookie: String, key: [UInt8], now: Int64) throws -> Live? {
        let utf8 = Array(cookie.utf8)
        guard let publicID = Tokens.publicID(of: cookie, prefix: prefix) else { return nil }
        let row = try db.first(
            """
            SELECT s.id, s.hash, p.id, p.handle, s.last_seen_at FROM sessions s JOIN people p ON p.id = s.person_id
            WHERE s.public_id = ?1 AND s.revoked_at IS NULL AND p.disabled = 0
              AND s.last_seen_at + s.idle_s > ?2 AND s.expires_at > ?2
            """, [.text(publicID), .int(now)]
        ) { ($0.int(0), $0.blob(1), $0.int(2), $0.text(3), $0.int(4)) }
        let presented = Sodium.keyedHash(utf8, key: key)  // hashed whatever the row, for even timing
        guard let row, Sodium.constantTimeEquals(presented, row.1) else { return nil }
        return Live(
            id: row.0, publicID: publicID, principal: Principal(personID: row.2, handle: row.3, tokenID: 0),
            lastSeen: row.4, csrf: csrfToken(cookie: cookie, key: key))
    }

    /// The CSRF token bound to the session whose cookie is `cookie`: hex of the keyed hash of
    /// `csrf:` + the cookie value (never stored; another session's token never matches).
    package static func csrfToken(cookie: String, key: [UInt8]) -> String {
        Hex.encode(Sodium.keyedHash(Array("csrf:".utf8) + Array(cookie.utf8), key: key))
    }

    /// Whether `presented` is `session`'s CSRF token, compared in constant time.
    package static func csrfMatches(_ presented: String?, _ session: Live) -> Bool {
        guard let presented, presented.utf8.count == session.csrf.utf8.count else { return false }
        return Sodium.constantTimeEquals(Array(presented.utf8), Array(session.csrf.utf8))
    }

    /// Records that the session was used now, when last recorded `touchSeconds` ago or more.
    package static func touch(_ db: Database, _ session: Live, now: Int64) throws {
        guard now - session.lastSeen >= touchSeconds else { return }
        try db.immediate { tx in
            try tx.db.run("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1", [.int(session.id), .int(now)])
        }
    }

    /// Ends session `publicID` (sign-out, `draven sessions revoke`), audited as `action` by `actor`.
    /// Returns false when there is no such live session.
    package static func revoke(
        _ tx: Transaction, publicID: String, actor: String, action: String = "session.revoke", now: Int64
    ) throws -> Bool {
        let revoked =
            try tx.db.first(
                "UPDATE sessions SET revoked_at = ?2 WHERE public_id = ?1 AND revoked_at IS NULL RETURNING id",
                [.text(publicID), .int(now)]
            ) { _ in true } ?? false
        guard revoked else { return false }
        try Audit.record(
            tx, at: now, actor: actor, action: action, subject: "session/\(publicID)", detail: ["via": "console"])
        return true
    }

    /// One session as `draven sessions list` shows it (never its secret).
    package struct Listed: Sendable {
        package var publicID: String
        package var person: String
        package var method: String
        package var remote: String
        package var createdAt: Int64
        package var lastSeenAt: Int64
        /// When it ends if unused (the earlier of idle and absolute expiry).
        package var endsAt: Int64
        package var revokedAt: Int64?
    }

    /// Every session, oldest first.
    package static func list(_ db: Database) throws -> [Listed] {
        try db.query(
            """
            SELECT s.public_id, p.handle, s.method, s.remote, s.created_at, s.last_seen_at,
                   min(s.last_seen_at + s.idle_s, s.expires_at), s.revoked_at
            FROM sessions s JOIN people p ON p.id = s.person_id ORDER BY s.id
            """
        ) {
            Listed(
                publicID: $0.text(0), person: $0.text(1), method: $0.text(2), remote: $0.text(3),
                createdAt: $0.int(4), lastSeenAt: $0.int(5), endsAt: $0.int(6), revokedAt: $0.optionalInt(7))
        }
    }
}
