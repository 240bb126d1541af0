@testable import DravenCore

/// `json`: the strict JSON parser, its serializer and the member scanner that reads unverified
/// webhook bodies. Properties: a parsed document serializes and parses back to itself; the scanner
/// agrees with the parser on every member of a document the parser accepts.
enum FuzzJSON {
    static func run(_ input: [UInt8]) {
        // The scanner reads bodies before their signature is checked: anything may reach it.
        for path in hintPaths { _ = JSON.value(at: path, in: input) }
        guard let document = try? JSON.parse(input) else { return }
        let again = try? JSON.parse(document.serializedBytes())
        check(again == document, "serialize then parse changed the document: \(document.serialized())")
        guard let object = document.objectValue else {
            check(JSON.value(at: [], in: input) == document, "the scanner's whole document differs")
            return
        }
        for (key, value) in object.entries {
            check(JSON.value(at: [key], in: input) == value, "the scanner disagrees on member \(key)")
            for (inner, innerValue) in value.objectValue?.entries ?? [] {
                check(JSON.value(at: [key, inner], in: input) == innerValue, "the scanner disagrees on \(key).\(inner)")
            }
        }
        check(JSON.value(at: ["draven-fuzz-absent"], in: input) == nil, "the scanner found an absent member")
    }

    static let hintPaths: [[String]] = [
        ["repository", "full_name"], ["project", "path_with_namespace"], ["repository", "project", "key"],
        ["repository", "slug"],
    ]
}

/// `webhook`: a provider webhook body as webhook-receive reads it: the media type (JSON or GitHub's
/// form encoding), the repository hint (scanned before the signature check), the event mapping
/// and push moves. Input: one byte choosing the provider and event, one the content type, the body.
enum FuzzWebhook {
    static let events: [(String, String)] = [
        ("github", "workflow_run"), ("github", "workflow_job"), ("github", "deployment_status"), ("github", "push"),
        ("gitlab", "Pipeline Hook"), ("gitlab", "Job Hook"), ("gitlab", "Deployment Hook"), ("gitlab", "Push Hook"),
        ("bitbucket", "repo:commit_status_updated"), ("bitbucket", "repo:commit_status_created"),
        ("bitbucket", "repo:push"),
        ("bitbucket-dc", "repo:refs_changed"),
    ]
    static let contentTypes = ["application/json", "application/x-www-form-urlencoded",
                               "application/vnd.api+json; charset=utf-8", "text/plain"]

    static func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let (provider, name) = events[Int(input[0]) % events.count]
        let request = Request(method: "POST", path: "/hooks/\(provider)",
                              contentType: contentTypes[Int(input[1]) % contentTypes.count], body: Array(input[2...]))
        let hint = HookIntegration.repositoryHint(request.body, request: request)
        guard let payload = try? WebhookPayload.decode(request.body, request: request) else { return }
        check(hint == repository(payload), "the scanned repository \(hint ?? "nil") differs from the parsed one")
        _ = ProviderEvent.parse(provider: provider, name: name, payload: payload)
        if PushEvent.isPush(provider: provider, name: name),
           let json = try? WebhookPayload.json(request.body, request: request) {
            _ = PushEvent.parse(provider: provider, json)
        }
    }

    /// What `repositoryHint` should find, read from the parsed document.
    static func repository(_ p: JSON) -> String? {
        if let s = p["repository"]?["full_name"]?.stringValue { return s }
        if let s = p["project"]?["path_with_namespace"]?.stringValue { return s }
        if let key = p["repository"]?["project"]?["key"]?.stringValue,
           let slug = p["repository"]?["slug"]?.stringValue {
            return key + "/" + slug
        }
        return nil
    }
}
