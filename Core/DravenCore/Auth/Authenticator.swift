/// Finds the caller of an API request from `Authorization: Bearer <token>` or, when the
/// configuration names one (`[api] token_header`), from that header (e.g. `X-Token-XPipe`).
package enum Authenticator {
    /// - Throws: `DravenError.unauthenticated` when no valid token is presented.
    package static func authenticate(_ request: Request, _ context: Context) throws -> Principal {
        let db = try context.db()
        var token: String?
        if let auth = request.header("authorization") {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]).trimmingSpaces() }
        }
        if token == nil, let name = try Settings.get(db, "api.token_header") {
            token = request.header(name)?.trimmingSpaces()
        }
        guard let token, !token.isEmpty else { throw DravenError.unauthenticated }
        let key = try Tokens.loadKey(context.paths)
        guard let principal = try Tokens.verify(db, token: token, key: key) else { throw DravenError.unauthenticated }
        context.principal = principal
        return principal
    }
}

/// Global settings applied from configuration: reads the `settings` table (`ConfigApply` writes it).
package enum Settings {
    package static func get(_ db: Database, _ key: String) throws -> String? {
        try db.first("SELECT value FROM settings WHERE key = ?1", [.text(key)]) { $0.text(0) }
    }
}
