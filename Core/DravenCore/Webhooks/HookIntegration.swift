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
    package var provider: Provider
    var repo: String
    /// The integration's settings as `draven apply` stored them (JSON text); read by scanning
    /// for the one member a request needs, not decoded whole.
    var document: [UInt8]

    /// - Throws: `DravenError.badSignature` when no integration matches (fail closed).
    package static func find(
        _ db: Database, providers: [Provider], project: String?, body: [UInt8],
        request: Request
    ) throws -> HookIntegration {
        let repo = project == nil ? repositoryHint(body, request: request) : nil
        guard project != nil || repo != nil else {
            throw DravenError.badSignature("no integration: add ?project=NAME to the webhook URL")
        }
        let rows = try db.query(
            """
            SELECT p.id, p.name, i.provider, i.repo, i.document FROM integrations i JOIN projects p ON p.id =
            i.project_id
            WHERE p.retired = 0 AND (p.name = ?1 OR (?1 IS NULL AND i.repo = ?2))
            ORDER BY p.id
            """, [.text(project), .text(repo)]
        ) { row -> HookIntegration? in
            guard let provider = Provider(rawValue: row.text(2)), providers.contains(provider) else { return nil }
            return HookIntegration(
                projectID: row.int(0), project: row.text(1), provider: provider, repo: row.text(3),
                document: Array(row.text(4).utf8))
        }.compactMap { $0 }
        guard let match = rows.first else {
            throw DravenError.badSignature(
                "no \(providers[0]) integration for \(project.map { "project \($0)" } ?? "repository \(repo ?? "")")")
        }
        return match
    }

    /// A project's integration as the deliverer dispatches through it: provider, repository,
    /// method and its settings (JSON text). `HookIntegration` holds the reads of `integrations`
    /// (`ConfigApply` writes them).
    static func settings(_ db: Database, projectID: Int64) throws -> (String, String, String, String)? {
        try db.first(
            "SELECT provider, repo, method, document FROM integrations WHERE project_id = ?1",
            [.int(projectID)], { ($0.text(0), $0.text(1), $0.text(2), $0.text(3)) })
    }

    /// The repository an (unverified) payload names, to choose the secret to verify it with: the
    /// first any provider finds where it puts it (`CIProvider.repository`), in a fixed order, as
    /// the integration (and so its provider) is not known yet. JSON bodies are scanned, not
    /// decoded: only up to the member (a 7 KB push costs ~10× less).
    static func repositoryHint(_ body: [UInt8], request: Request) -> String? {
        guard let json = try? WebhookPayload.json(body, request: request) else { return nil }
        return Provider.allCases.lazy.compactMap { $0.ci.repository(in: json) }.first
    }

    /// The secret named by `key` in the integration, from the secrets store.
    /// - Throws: `.badSignature` when none is configured (unsigned hooks are refused).
    func secret(_ key: String, db: Database, paths: Paths) throws -> SecretBytes {
        guard let name = JSON.string(at: [key], in: document) else {
            throw DravenError.badSignature("project \(project) has no \(key) configured; unsigned webhooks are refused")
        }
        return try VerificationSecret.load(name, what: "the \(key) of project \(project)", db: db, paths: paths)
    }

    /// Proves the delivery came from the provider (`CIProvider.authenticate`): its
    /// `webhook_secret` signature or token, and for a GitLab integration naming a
    /// `signing_secret`, GitLab's signature (then required).
    /// - Returns: the delivery id the signature covers (GitLab's `webhook-id`), to dedupe by; nil
    ///   when the provider signs no id (its id headers are then only a hint).
    /// - Throws: `.badSignature` naming the missing or wrong header, or the secret not configured.
    package func authenticate(_ request: Request, db: Database, paths: Paths, now: Int64) throws -> String? {
        try provider.ci.authenticate(request, self, db: db, paths: paths, now: now)
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
