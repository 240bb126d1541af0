/// The integration a webhook is for, and the checks that prove it came from there.
///
/// The integration is named by the hook URL's `?project=NAME` or, failing that, found by the
/// repository the payload names (GitHub `repository.full_name`, GitLab
/// `project.path_with_namespace`, Bitbucket Cloud `repository.full_name`, Bitbucket DC
/// `repository.project.key/slug`). The payload is not trusted for anything else until the
/// signature over its raw bytes verifies with that integration's `webhook_secret`.
/// Holds the reads of the `integrations` table (`ConfigApply` writes it).
package struct HookIntegration {
    package var projectID: Int64
    package var project: String
    package var provider: String
    var repo: String
    /// The integration's settings as `draven apply` stored them (JSON text); read by scanning
    /// for the one member a request needs, not decoded whole.
    var document: [UInt8]

    /// - Throws: `DravenError.badSignature` when no integration matches (fail closed).
    package static func find(_ db: Database, providers: [String], project: String?, body: [UInt8], request: Request) throws -> HookIntegration {
        let repo = project == nil ? repositoryHint(body, request: request) : nil
        guard project != nil || repo != nil else { throw DravenError.badSignature("no integration: add ?project=NAME to the webhook URL") }
        let rows = try db.query("""
            SELECT p.id, p.name, i.provider, i.repo, i.document FROM integrations i JOIN projects p ON p.id = i.project_id
            WHERE p.retired = 0 AND (p.name = ?1 OR (?1 IS NULL AND i.repo = ?2))
            ORDER BY p.id
            """, [.text(project), .text(repo)]) {
            HookIntegration(projectID: $0.int(0), project: $0.text(1), provider: $0.text(2), repo: $0.text(3),
                            document: Array($0.text(4).utf8))
        }.filter { providers.contains($0.provider) }
        guard let match = rows.first else {
            throw DravenError.badSignature("no \(providers[0]) integration for \(project.map { "project \($0)" } ?? "repository \(repo ?? "")")")
        }
        return match
    }

    /// A project's integration as the deliverer dispatches through it: provider, repository,
    /// method and its settings (JSON text). `HookIntegration` holds the reads of `integrations`
    /// (`ConfigApply` writes them).
    static func settings(_ db: Database, projectID: Int64) throws -> (String, String, String, String)? {
        try db.first("SELECT provider, repo, method, document FROM integrations WHERE project_id = ?1",
                     [.int(projectID)], { ($0.text(0), $0.text(1), $0.text(2), $0.text(3)) })
    }

    /// The repository an (unverified) payload names, to choose the secret to verify it with.
    /// JSON bodies are scanned, not decoded: only up to the member (a 7 KB push costs ~10× less).
    static func repositoryHint(_ body: [UInt8], request: Request) -> String? {
        guard let json = try? WebhookPayload.json(body, request: request) else { return nil }
        if let s = JSON.string(at: ["repository", "full_name"], in: json) { return s }
        if let s = JSON.string(at: ["project", "path_with_namespace"], in: json) { return s }
        if let key = JSON.string(at: ["repository", "project", "key"], in: json), let slug = JSON.string(at: ["repository", "slug"], in: json) {
            return key + "/" + slug
        }
        return nil
    }

    /// The secret named by `key` in the integration, from the secrets store.
    /// - Throws: `.badSignature` when none is configured (unsigned hooks are refused).
    func secret(_ key: String, db: Database, paths: Paths) throws -> SecretBytes {
        guard let name = JSON.string(at: [key], in: document) else {
            throw DravenError.badSignature("project \(project) has no \(key) configured; unsigned webhooks are refused")
        }
        return try VerificationSecret.load(name, what: "the \(key) of project \(project)", db: db, paths: paths)
    }

    /// Proves the delivery came from the provider: its `webhook_secret` signature or token, and
    /// for a GitLab integration naming a `signing_secret`, GitLab's signature (then required).
    /// - Returns: the delivery id the signature covers (GitLab's `webhook-id`), to dedupe by; nil
    ///   when the provider signs no id (its id headers are then only a hint).
    /// - Throws: `.badSignature` naming the missing or wrong header, or the secret not configured.
    package func authenticate(_ request: Request, db: Database, paths: Paths, now: Int64) throws -> String? {
        guard provider == "gitlab", JSON.string(at: ["signing_secret"], in: document) != nil else {
            try verify(request, secret: try secret("webhook_secret", db: db, paths: paths))
            return nil
        }
        let signing = try secret("signing_secret", db: db, paths: paths)
        let id = try GitLabSignature.verify(request, secret: signing, now: now)
        // A token configured as well is checked as well.
        if JSON.string(at: ["webhook_secret"], in: document) != nil {
            try verify(request, secret: try secret("webhook_secret", db: db, paths: paths))
        }
        return id
    }

    /// Checks the provider's signature or token over the raw body.
    /// - Throws: `.badSignature` naming the missing or wrong header.
    func verify(_ request: Request, secret: SecretBytes) throws {
        switch provider {
        case "github":
            guard let header = request.header("x-hub-signature-256") else { throw DravenError.badSignature("X-Hub-Signature-256 is missing") }
            guard Sodium.hexSignatureMatches(header, prefix: "sha256=", expected: Sodium.hmacSHA256(key: secret, message: request.body)) else {
                throw DravenError.badSignature("X-Hub-Signature-256 does not match the body")
            }
        case "gitlab":
            guard let token = request.header("x-gitlab-token") else { throw DravenError.badSignature("X-Gitlab-Token is missing") }
            guard Array(token.utf8).withUnsafeBytes({ secret.constantTimeEquals($0) }) else {
                throw DravenError.badSignature("X-Gitlab-Token is wrong")
            }
        default:  // Bitbucket Cloud and Data Center: X-Hub-Signature is HMAC-SHA256 (not GitHub's SHA-1)
            guard let header = request.header("x-hub-signature") else { throw DravenError.badSignature("X-Hub-Signature is missing") }
            guard Sodium.hexSignatureMatches(header, prefix: "sha256=", expected: Sodium.hmacSHA256(key: secret, message: request.body)) else {
                throw DravenError.badSignature("X-Hub-Signature does not match the body")
            }
        }
    }
}

/// GitLab's signed webhooks, the Standard Webhooks scheme (standardwebhooks.com; GitLab MR
/// !230944): `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
/// space-separated list of `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`
/// (several during a key rotation; other versions are ignored). The key is the base64 after
/// `whsec_` in the signing token GitLab was given (the prefix is optional here).
///
/// The timestamp must be within five minutes of now; the id is signed, so it is the delivery id
/// draven dedupes by (with the body hash): a replay inside the window is a duplicate that changes
/// nothing, one outside it is refused.
enum GitLabSignature {
    static let window: Int64 = 300

    /// - Returns: the verified `webhook-id`.
    /// - Throws: `.badSignature` naming the header that is missing, malformed, stale or wrong.
    static func verify(_ request: Request, secret: SecretBytes, now: Int64) throws -> String {
        guard let id = request.header("webhook-id"), !id.isEmpty, id.utf8.count <= 255 else {
            throw DravenError.badSignature("webhook-id is missing (this GitLab integration requires signatures)")
        }
        guard let timestamp = SignedRequest.timestamp(request.header("webhook-timestamp")) else {
            throw DravenError.badSignature("webhook-timestamp is missing or not Unix seconds (digits only)")
        }
        guard abs(now - timestamp) <= window else {
            throw DravenError.badSignature("webhook-timestamp is more than five minutes away from now")
        }
        guard let header = request.header("webhook-signature"), !header.isEmpty else {
            throw DravenError.badSignature("webhook-signature is missing (this GitLab integration requires signatures)")
        }
        let key = try self.key(secret)
        let expected = Sodium.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + request.body)
        var matched = false
        // Split at the space byte, as the reference implementation splits (`split(" ")`): split as
        // a String, a space followed by a combining mark is one Character, and the entry before
        // it was not seen (found by the fuzz target `signatures`).
        for entry in header.utf8.split(separator: 0x20) where entry.starts(with: "v1,".utf8) {
            // Every entry is compared (constant time each): no early exit tells which one matched.
            if let given = SecretsCrypto.base64Decode(entry.dropFirst(3)),
               Sodium.constantTimeEquals(given, expected) { matched = true }
        }
        guard matched else { throw DravenError.badSignature("webhook-signature does not match the body") }
        return id
    }

    /// The HMAC key: the signing token's base64 (after `whsec_`), decoded; padding may be left
    /// out, as the reference implementation allows.
    static func key(_ secret: SecretBytes) throws -> SecretBytes {
        let decoded: [UInt8]? = secret.withUnsafeBytes { raw in
            var text = Array(raw.starts(with: Array("whsec_".utf8)) ? raw.dropFirst(6) : raw[...])
            defer { Sodium.wipe(&text) }
            while text.count % 4 != 0 { text.append(UInt8(ascii: "=")) }
            return SecretsCrypto.base64Decode(text)
        }
        guard var bytes = decoded, !bytes.isEmpty else {
            throw DravenError.badSignature("the GitLab signing secret in the secrets store is not whsec_<base64>")
        }
        defer { Sodium.wipe(&bytes) }
        return SecretBytes(copying: bytes, label: "gitlab signing key")
    }
}

/// Webhook bodies: JSON, or GitHub's `application/x-www-form-urlencoded` with the JSON in `payload`.
package enum WebhookPayload {
    /// `duplicateKeys` is explicit: `.lastWins` for what a provider wrote (read as its own
    /// consumers read it), `.refuse` for draven's own contracts (the runner callback).
    /// - Throws: `.unsupportedMediaType` for other types, `.malformed` for bodies that are not JSON.
    package static func decode(_ body: [UInt8], request: Request, duplicateKeys: JSON.DuplicateKeys) throws -> JSON {
        try JSON.parse(json(body, request: request), duplicateKeys: duplicateKeys)
    }

    /// The JSON text of a body: the body itself, or the `payload` field of GitHub's form encoding.
    /// - Throws: as `decode`, but does not check that the text is JSON.
    package static func json(_ body: [UInt8], request: Request) throws -> [UInt8] {
        try checkMediaType(request)
        if request.mediaType == "application/x-www-form-urlencoded" {
            let form = Request(method: "", path: "", body: body).formItems
            guard let payload = form["payload"] else { throw DravenError.malformed("the form has no payload field") }
            return Array(payload.utf8)
        }
        guard !body.isEmpty else { throw DravenError.malformed("the body is empty") }
        return body
    }

    /// - Throws: `.unsupportedMediaType` unless the body is JSON or GitHub's form encoding.
    package static func checkMediaType(_ request: Request) throws {
        switch request.mediaType {
        case "application/x-www-form-urlencoded", "application/json": return
        case let type? where type.hasSuffix("+json"): return
        default: throw DravenError.unsupportedMediaType(expected: "application/json", got: request.contentType)
        }
    }
}

/// A secret that verifies incoming requests (webhook, runner and chat signing secrets).
package enum VerificationSecret {
    /// - Throws: `.badSignature` when the entry is missing (fail closed), `.storeNotReady` when
    ///   the store cannot be read (logged without the secret).
    package static func load(_ name: String, what: String, db: Database, paths: Paths) throws -> SecretBytes {
        do {
            return try SecretsStore(SecretsPaths(paths), db: db).secret(name)
        } catch SecretsError.notFound {
            throw DravenError.badSignature("\(what) is not in the secrets store")
        } catch let error as SecretsError {
            Log.error("secrets store unusable", ["error": "\(error)"])
            throw DravenError.storeNotReady("the secrets store cannot be read")
        }
    }
}
