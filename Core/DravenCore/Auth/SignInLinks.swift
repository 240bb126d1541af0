/// Owns the `sign_in_links` table: one-time console sign-in links made by `draven console link`.
/// The link's token is `drl_<public id>_<secret>`; only its keyed BLAKE2b hash is stored (key:
/// `Paths.tokenKey`). Opening the link (GET) changes nothing, so link-preview bots cannot use it
/// up; the page's button posts it, and `consume` starts the session: once, before `expires_at`.
package enum SignInLinks {
    package static let prefix = "drl_"
    package static let defaultTTL: Int64 = 15 * 60
    /// The longest a link may live (a day).
    package static let maxTTL: Int64 = 24 * 3600

    /// A new link's token, for printing once.
    package struct Created {
        package var publicID: String
        package var token: String
        package var expiresAt: Int64
    }

    /// A usable link: whom it signs in.
    package struct Usable: Sendable {
        package var id: Int64
        package var publicID: String
        package var personID: Int64
        package var handle: String
        package var expiresAt: Int64
    }

    /// Makes a link for `person`, audited as `console.link` by `actor`.
    /// - Throws: `DravenError.notFound` when the person is not in the applied configuration (or
    ///   disabled), `.invalidField` when `ttl` is not 1 s to a day.
    package static func create(
        _ tx: Transaction, person: String, ttl: Int64, actor: String, key: [UInt8], now: Int64
    ) throws -> Created {
        guard (1...maxTTL).contains(ttl) else { throw DravenError.invalidField(pointer: "ttl", reason: "1 s to 24 h") }
        guard let personID = try People.enabledID(tx.db, handle: person) else {
            throw DravenError.notFound(what: "no person \(person) in the applied configuration")
        }
        let (publicID, token) = Tokens.mint(prefix: prefix)
        try tx.db.run(
            """
            INSERT INTO sign_in_links (public_id, hash, person_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
            """,
            [
                .text(publicID), .blob(Sodium.keyedHash(token.utf8, key: key)), .int(personID), .int(now),
                .int(now + ttl),
            ])
        try Audit.record(
            tx, at: now, actor: actor, action: "console.link", subject: person,
            detail: ["link": .string(publicID), "expires_at": .string(Clock.rfc3339(now + ttl))])
        return Created(publicID: publicID, token: token, expiresAt: now + ttl)
    }

    /// The link `token` names if it may still be used (unused, unexpired, its person enabled).
    package static func usable(_ db: Database, token: String, key: [UInt8], now: Int64) throws -> Usable? {
        let utf8 = Array(token.utf8)
        guard let publicID = Tokens.publicID(of: token, prefix: prefix) else { return nil }
        let row = try db.first(
            """
            SELECT l.id, l.hash, p.id, p.handle, l.expires_at FROM sign_in_links l JOIN people p ON p.id = l.person_id
            WHERE l.public_id = ?1 AND l.used_at IS NULL AND l.expires_at > ?2 AND p.disabled = 0
            """, [.text(publicID), .int(now)]
        ) { ($0.int(0), $0.blob(1), $0.int(2), $0.text(3), $0.int(4)) }
        let presented = Sodium.keyedHash(utf8, key: key)
        guard let row, Sodium.constantTimeEquals(presented, row.1) else { return nil }
        return Usable(id: row.0, publicID: publicID, personID: row.2, handle: row.3, expiresAt: row.4)
    }

    /// Uses the link and starts its session, in one transaction: a second use finds it used.
    /// Returns nil when the link is not usable (any more).
    package static func consume(
        _ tx: Transaction, token: String, remote: String, key: [UInt8], now: Int64
    ) throws -> (Usable, Sessions.Created)? {
        guard let link = try usable(tx.db, token: token, key: key, now: now) else { return nil }
        let session = try Sessions.create(
            tx, personID: link.personID, handle: link.handle, method: .link, remote: remote, key: key, now: now)
        let used =
            try tx.db.first(
                "UPDATE sign_in_links SET used_at = ?2, session_id = ?3 WHERE id = ?1 AND used_at IS NULL RETURNING id",
                [.int(link.id), .int(now), .int(session.id)]
            ) { _ in true } ?? false
        guard used else { throw DravenError.conflict("the link was used meanwhile") }
        return (link, session)
    }
}
