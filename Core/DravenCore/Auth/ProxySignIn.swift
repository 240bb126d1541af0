/// Sign-in by an authenticating reverse proxy (an OIDC proxy such as oauth2-proxy in front of
/// draven's nginx): when the configuration names a header (`[console] proxy_user_header`) and the
/// proxies' addresses (`trusted_proxies`), a console request from one of those addresses carrying
/// that header is the person whose handle it names. Off unless configured; a request from any
/// other address is never believed, whatever it carries. Reads the `settings` table.
package enum ProxySignIn {
    /// What a request's proxy header says, when it may be believed.
    package enum Claim: Equatable, Sendable {
        /// Not configured, not from a trusted proxy, or no header: sign in some other way.
        case none
        /// A trusted proxy names this enabled person.
        case person(id: Int64, handle: String)
        /// A trusted proxy names someone who is not an enabled person of the configuration.
        case unknown(String)
    }

    package static func claim(_ db: Database, _ request: Request) throws -> Claim {
        guard let header = try Settings.get(db, "console.proxy_user_header"),
            let proxies = try Settings.get(db, "console.trusted_proxies").flatMap({ try? JSON.parse($0) })?.arrayValue,
            proxies.contains(.string(request.remoteAddress)),
            let handle = request.header(header)?.trimmingSpaces(), !handle.isEmpty
        else { return .none }
        guard let id = try People.enabledID(db, handle: handle) else { return .unknown(handle) }
        return .person(id: id, handle: handle)
    }
}
