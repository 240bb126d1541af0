@testable import DravenCore

/// `json`: the strict JSON parser, its lenient mode (last duplicate key wins: provider bodies), its
/// serializer and the member scanner that reads unverified webhook bodies. Properties: a parsed
/// document serializes and parses back to itself; the scanner agrees with the parser on every
/// member of a document the parser accepts; the lenient mode agrees with the strict one where
/// that accepts, refuses only what it refuses (a repeated key aside), and is last-wins.
enum FuzzJSON {
    static func run(_ input: [UInt8]) {
        // The scanner reads bodies before their signature is checked: anything may reach it.
        for path in hintPaths { _ = JSON.value(at: path, in: input) }
        let lenient = lenient(input)
        guard let document = try? JSON.parse(input) else { return }
        check(lenient == document, "the lenient parser differs from the strict one on a document both accept")
        lastWins(document)
        let again = try? JSON.parse(document.serializedBytes())
        check(again == document, "serialize then parse changed the document: \(document.serialized())")
        guard let object = document.objectValue else {
            check(JSON.value(at: [], in: input) == document, "the scanner's whole document differs")
            return
        }
        for (key, value) in object.entries {
            check(JSON.value(at: [key], in: input) == value, "the scanner disagrees on member \(key)")
            for (inner, innerValue) in value.objectValue?.entries ?? [] {
                check(
                    JSON.value(at: [key, inner], in: input) == innerValue, "the scanner disagrees on \(key).\(inner)")
            }
        }
        check(JSON.value(at: ["draven-fuzz-absent"], in: input) == nil, "the scanner found an absent member")
    }

    /// The lenient mode (provider bodies): never crashes; refuses what the strict parser refuses,
    /// but for a repeated key; its document has no repeated key (a last-wins reading is one object).
    static func lenient(_ input: [UInt8]) -> JSON? {
        let lenient: JSON?
        do {
            lenient = try JSON.parse(input, duplicateKeys: .lastWins)
        } catch {
            check((try? JSON.parse(input)) == nil, "the lenient parser refused what the strict one accepts: \(error)")
            return nil
        }
        do {
            _ = try JSON.parse(input)
        } catch {
            check(
                error.reason.hasPrefix("duplicate key"),
                "the strict parser refused what the lenient one accepts: \(error)")
            check((try? JSON.parse(lenient!.serializedBytes())) == lenient, "the lenient document still repeats a key")
        }
        return lenient
    }

    /// Last wins, in the first one's place: a strictly valid object with one of its members
    /// repeated at the end (its key spelled with an escape, as another writer may) reads as the
    /// object with that member's value replaced; repeated at the front, as the object with that
    /// member moved first. The strict parser refuses both.
    static func lastWins(_ document: JSON) {
        guard let object = document.objectValue, !object.entries.isEmpty else { return }
        let text = document.serializedBytes()
        let pick = object.entries[text.count % object.entries.count]
        let value = object.entries[(text.count / 3) % object.entries.count].value
        var key: [UInt8] = []
        JSON.writeString(pick.key, into: &key)
        if key.count > 2, key[1] < 0x80, key[1] != UInt8(ascii: "\\") {  // the first character as \u00XX
            key.replaceSubrange(1...1, with: Array("\\u00".utf8) + Array(Hex.encode([key[1]]).utf8))
        }
        let member = key + [UInt8(ascii: ":")] + value.serializedBytes()
        let atEnd = text.dropLast() + [UInt8(ascii: ",")] + member + [UInt8(ascii: "}")]
        // Keys compared by their bytes, as JSON (and JavaScript) compares them.
        func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
        var replaced = object
        replaced.entries[replaced.entries.firstIndex { same($0.key, pick.key) }!].value = value
        check(
            (try? JSON.parse(atEnd, duplicateKeys: .lastWins)) == .object(replaced),
            "a repeated key did not take the last value in the first place")
        check((try? JSON.parse(atEnd)) == nil, "the strict parser accepted a repeated key")
        let atFront = [UInt8(ascii: "{")] + member + [UInt8(ascii: ",")] + text.dropFirst()
        var moved = JSONObject()
        moved[pick.key] = pick.value
        for entry in object.entries where !same(entry.key, pick.key) { moved.entries.append(entry) }
        check(
            (try? JSON.parse(atFront, duplicateKeys: .lastWins)) == .object(moved),
            "a key repeated after the first did not keep the first place with the last value")
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
    static let events: [(Provider, String)] = [
        (.github, "workflow_run"), (.github, "workflow_job"), (.github, "deployment_status"), (.github, "push"),
        (.gitlab, "Pipeline Hook"), (.gitlab, "Job Hook"), (.gitlab, "Deployment Hook"), (.gitlab, "Push Hook"),
        (.bitbucketCloud, "repo:commit_status_updated"), (.bitbucketCloud, "repo:commit_status_created"),
        (.bitbucketCloud, "repo:push"),
        (.bitbucketDataCenter, "repo:refs_changed"),
    ]
    static let contentTypes = [
        "application/json", "application/x-www-form-urlencoded",
        "application/vnd.api+json; charset=utf-8", "text/plain",
    ]

    static func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let (provider, name) = events[Int(input[0]) % events.count]
        let request = Request(
            method: "POST", path: "/hooks/\(provider)",
            contentType: contentTypes[Int(input[1]) % contentTypes.count], body: Array(input[2...]))
        let hint = HookIntegration.repositoryHint(request.body, request: request)
        // webhook-receive reads provider bodies last-duplicate-wins; the scanner finds a key's first
        // occurrence, so the two agree on what the strict parser accepts (no key repeated).
        guard let payload = try? WebhookPayload.decode(request.body, request: request, duplicateKeys: .lastWins) else {
            return
        }
        if let strict = try? WebhookPayload.decode(request.body, request: request, duplicateKeys: .refuse) {
            check(strict == payload, "the lenient reading differs from the strict one")
            check(hint == repository(payload), "the scanned repository \(hint ?? "nil") differs from the parsed one")
        }
        FuzzEvents.checkEvent(provider.ci.parse(event: name, payload: payload))
        if provider.ci.isPush(event: name), let json = try? WebhookPayload.json(request.body, request: request) {
            _ = provider.ci.pushMoves(json)
        }
    }

    /// What `repositoryHint` should find, read from the parsed document.
    static func repository(_ p: JSON) -> String? {
        if let s = p["repository"]?["full_name"]?.stringValue { return s }
        if let s = p["project"]?["path_with_namespace"]?.stringValue { return s }
        if let key = p["repository"]?["project"]?["key"]?.stringValue,
            let slug = p["repository"]?["slug"]?.stringValue
        {
            return key + "/" + slug
        }
        return nil
    }
}
