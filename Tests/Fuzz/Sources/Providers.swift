@testable import DravenCore

/// `redactor`: `Redactor.clean` over a message that quotes a credential. Input: one byte for the
/// credential's length (8...71 bytes), one of flags, the credential, then the message, each 0x01
/// byte of which becomes the credential in one of the forms the redactor knows (raw,
/// percent-encoded, standard or URL-safe base64, padded or not; in turn; the first eight). Properties: the output
/// is at most `Redactor.limit` bytes, holds no control character, and — for a credential of
/// printable ASCII without space or brackets (a token; the mark `[redacted]` next to other
/// text cannot spell one) — none of those forms. With flag bit 0 the credential is the raw
/// bytes (any secret the store holds): then only the bound and the control characters are checked.
enum FuzzRedactor {
    static func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let length = 8 + Int(input[0]) % 64
        let binary = input[1] & 1 == 1
        var credential = Array(input.dropFirst(2).prefix(length))
        guard credential.count == length else { return }
        if !binary {  // printable ASCII, no space, no [ ]
            let alphabet = (0x21...0x7e).filter { $0 != 0x5b && $0 != 0x5d }.map(UInt8.init)
            credential = credential.map { alphabet[Int($0) % alphabet.count] }
        }
        let forms = [
            credential, Redactor.percentEncoded(credential), Redactor.base64(credential, urlSafe: false),
            Redactor.base64(credential, urlSafe: true), Array(SecretsCrypto.base64(credential).utf8),
        ]
        var message: [UInt8] = []
        var n = 0
        for b in input.dropFirst(2 + length).prefix(1024) {  // at most 8 quotes: the message stays short
            if b == 1, n < 8 {
                message += forms[n % forms.count]
                n += 1
            } else {
                message.append(b)
            }
        }
        let text = String(decoding: message, as: UTF8.self)
        let out = Array(Redactor([SecretBytes(copying: credential, label: "fuzz credential")]).clean(text).utf8)
        check(out.count <= Redactor.limit, "the redacted message has \(out.count) bytes")
        check(!out.contains { $0 < 0x20 || $0 == 0x7f }, "the redacted message holds a control character")
        guard !binary else { return }
        for form in forms.dropLast() {  // the padded base64 contains the unpadded one
            check(!contains(out, form), "the redacted message still holds the credential (or a form of it)")
        }
        _ = Redactor.patternsOnly.clean(text)
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { h in
            (0...(h.count - needle.count)).contains { i in
                h[i] == needle[0] && (1..<needle.count).allSatisfy { h[i + $0] == needle[$0] }
            }
        }
    }
}

/// `events`: provider payloads as `ProviderEvent` maps them (webhooks) and as `RunControl.event`
/// maps a polled run. Input: one byte choosing the provider and event, then the body (read
/// last-duplicate-wins, as webhook-receive and the poller read it). Properties: no crash; an
/// event's state and waiting reason agree (`FuzzEvents.checkEvent`); a polled GitHub or GitLab run maps
/// as the webhook carrying the same run does.
enum FuzzEvents {
    static let events: [(Provider, String)] = [
        (.github, "workflow_run"), (.github, "workflow_job"), (.github, "deployment_status"),
        (.gitlab, "Pipeline Hook"), (.gitlab, "Job Hook"), (.gitlab, "Deployment Hook"),
        (.bitbucketCloud, "repo:commit_status_updated"), (.bitbucketCloud, "repo:commit_status_created"),
        (.github, "poll"), (.gitlab, "poll"), (.bitbucketCloud, "poll"),
    ]

    static func run(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let (provider, name) = events[Int(first) % events.count]
        let body = Array(input.dropFirst())
        guard name == "poll" else {
            guard let payload = try? JSON.parse(body, duplicateKeys: .lastWins) else { return }
            checkEvent(provider.ci.parse(event: name, payload: payload))
            return
        }
        guard let polled = RunControl.event(provider: provider, body: body) else { return }
        checkEvent(polled)
        guard let run = try? JSON.parse(body, duplicateKeys: .lastWins) else { return }
        switch provider {
        case .github:
            let hook = provider.ci.parse(event: "workflow_run", payload: ["workflow_run": run])
            check(hook == polled, "a polled GitHub run maps unlike its workflow_run webhook")
        case .gitlab:
            let hook = provider.ci.parse(event: "Pipeline Hook", payload: ["object_attributes": run])
            check(
                hook.state == polled.state && hook.waiting == polled.waiting && hook.runKey == polled.runKey,
                "a polled GitLab pipeline maps unlike its Pipeline Hook")
        case .bitbucketCloud, .bitbucketDataCenter:
            break
        }
    }

    /// What holds of every mapped event: a waiting run is running, and says why (in its detail too).
    static func checkEvent(_ event: ProviderEvent) {
        if let why = event.waiting {
            check(event.state == .running, "a waiting event reports \(event.state?.rawValue ?? "no state")")
            check(event.detail["waiting"] == .string(why), "a waiting event does not say why in its detail")
        } else {
            check(event.detail["waiting"] == nil, "an event that does not wait says why it waits")
        }
        _ = event.detail.entries.map { JSON.object([$0.key: $0.value]).serialized() }
    }
}
