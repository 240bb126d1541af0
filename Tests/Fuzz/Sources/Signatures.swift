@testable import DravenCore

/// `signatures`: every signature header draven parses, with a fixed key over the input's body.
/// Input: the header value (first line), then the body. GitHub `X-Hub-Signature-256: sha256=…`,
/// Bitbucket `X-Hub-Signature: sha256=…`, runner `X-Draven-Signature: v1=…` with
/// `X-Draven-Timestamp`, Slack `X-Slack-Signature: v0=…`, Teams `Authorization: HMAC <base64>`,
/// Mattermost `Authorization: Token …`, GitLab's Standard Webhooks (`webhook-id timestamp
/// signatures` on the first line). Properties: a header matches only if it is the prefix and
/// the hex (either case) of the HMAC; the right header always matches; base64 is canonical;
/// Standard Webhooks verification agrees with a reference computation; timestamps and replay
/// keys are canonical (`timestamps`).
enum FuzzSignatures {
    static let key = SecretBytes(copying: Array("draven-fuzz-signing-key".utf8), label: "fuzz key")
    static let now: Int64 = 1_700_000_000

    static func run(_ input: [UInt8]) {
        let newline = input.firstIndex(of: 10) ?? input.endIndex
        let header = String(decoding: input[..<newline], as: UTF8.self)
        let body = newline < input.endIndex ? Array(input[(newline + 1)...]) : []
        let expected = Sodium.hmacSHA256(key: key, message: body)
        for prefix in ["sha256=", "v1=", "v0="] {
            if Sodium.hexSignatureMatches(header, prefix: prefix, expected: expected) {
                check(
                    Hex.decode(String(header.dropFirst(prefix.count))) == expected,
                    "\(prefix) matched a header that is not the HMAC")
            }
            let right = prefix + Hex.encode(expected)
            check(
                Sodium.hexSignatureMatches(right, prefix: prefix, expected: expected),
                "the right \(prefix) header did not match")
            let upper = prefix + Hex.encode(expected).uppercased()
            check(
                Sodium.hexSignatureMatches(upper, prefix: prefix, expected: expected),
                "the upper-case \(prefix) header did not match")
        }
        runner(header, body)
        teams(header, body, expected)
        standardWebhooks(header, body)
        timestamps(header)
        if header.hasPrefix("Token ") {
            _ = Array(header.dropFirst(6).utf8).withUnsafeBytes { key.constantTimeEquals($0) }
        }
        _ = Hex.decode(header)
    }

    /// The runner's two headers: the first line split at a space into timestamp and signature.
    static func runner(_ header: String, _ body: [UInt8]) {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        var headers = ["x-draven-timestamp": parts[0]]
        if parts.count > 1 { headers["x-draven-signature"] = parts[1] }
        let request = Request(method: "POST", path: "/hooks/runner", headers: headers, body: body)
        do {
            let (timestamp, signature) = try RunnerSignature.headers(request, now: now)
            check(abs(now - timestamp) <= RunnerSignature.window, "a stale runner timestamp was taken")
            let signed = Array("\(timestamp).".utf8) + body
            _ = Sodium.hexSignatureMatches(
                signature, prefix: "v1=",
                expected: Sodium.hmacSHA256(key: key, message: signed))
        } catch DravenError.badSignature {
        } catch {
            check(false, "RunnerSignature.headers threw \(error)")
        }
    }

    /// GitLab's Standard Webhooks signature: the first line is `webhook-id`, `webhook-timestamp`
    /// and `webhook-signature` separated by the first two spaces. Differential: `verify` accepts
    /// exactly when the reference says so (id of 1...255 bytes, canonical timestamp within the
    /// window, one space-separated entry that is `v1,` + the standard base64 of the HMAC over
    /// `id.timestamp.body`), and then returns the id; the right entry always verifies, among others.
    static let signingSecret = SecretBytes(
        copying: Array("whsec_\(SecretsCrypto.base64(Array(signingKey.utf8)))".utf8),
        label: "fuzz whsec")
    static let signingKey = "draven-fuzz-standard-webhooks-key"

    static func standardWebhooks(_ header: String, _ body: [UInt8]) {
        let parts = header.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let id = parts[0]
        let timestamp = parts.count > 1 ? parts[1] : ""
        let signatures = parts.count > 2 ? parts[2] : ""
        func request(_ signatures: String) -> Request {
            Request(
                method: "POST", path: "/hooks/gitlab",
                headers: ["webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signatures],
                body: body)
        }
        let key = SecretBytes(copying: Array(signingKey.utf8), label: "fuzz key")
        let fresh = SignedRequest.timestamp(timestamp).map { abs(now - $0) <= GitLabSignature.window } ?? false
        let signable = !id.isEmpty && id.utf8.count <= 255 && fresh
        let mac = Sodium.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + body)
        let right = "v1," + SecretsCrypto.base64(mac)
        let reference = signable && signatures.utf8.split(separator: 0x20).contains { $0.elementsEqual(right.utf8) }
        let verified = try? GitLabSignature.verify(request(signatures), secret: signingSecret, now: now)
        check(
            (verified != nil) == reference,
            "Standard Webhooks verify said \(verified != nil), the reference \(reference)")
        check(verified == nil || verified == id, "Standard Webhooks verify returned another id")
        if signable {
            for list in [right, "v2,AAAA " + right, signatures + " " + right, right + " v1,AAAA"] {
                check(
                    (try? GitLabSignature.verify(request(list), secret: signingSecret, now: now)) == id,
                    "the right Standard Webhooks signature did not verify in \(list)")
            }
        }
        // The signing token itself, as the secrets store may hold it (whsec_ optional, padding optional).
        _ = try? GitLabSignature.key(SecretBytes(copying: Array(header.utf8), label: "fuzz token"))
    }

    /// Strict timestamps and replay keys: a timestamp the parser accepts is the decimal spelling
    /// of its number (so two accepted spellings are the same number iff they are the same bytes);
    /// a replay key is the number and the decoded MAC, so two accepted signature spellings give
    /// the same key iff they decode to the same bytes (hex case does not count).
    static func timestamps(_ header: String) {
        let words = header.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        for word in words {
            if let t = SignedRequest.timestamp(word) {
                check(String(t) == word && t >= 0, "timestamp \(word) parsed as \(t): another spelling of it")
            }
        }
        let t = SignedRequest.timestamp(words[0]) ?? now
        for prefix in ["v1=", "v0="] {
            let keys = words.dropFirst().map { SignedRequest.replayKey(timestamp: t, hexSignature: $0, prefix: prefix) }
            for (word, key) in zip(words.dropFirst(), keys) {
                let mac = word.hasPrefix(prefix) ? Hex.decode(String(word.dropFirst(prefix.count))) : nil
                check(
                    (key != nil) == (mac != nil),
                    "a replay key for a signature that does not decode, or none for one that does")
                guard let mac, let key else { continue }
                check(key == "\(t):" + Hex.encode(mac), "replay key \(key) is not the timestamp and the MAC")
                let other = prefix + String(word.dropFirst(prefix.count)).uppercased()
                check(
                    SignedRequest.replayKey(timestamp: t, hexSignature: other, prefix: prefix) == key,
                    "the upper-case spelling of a signature has another replay key")
                check(
                    SignedRequest.replayKey(timestamp: t &+ 1, hexSignature: word, prefix: prefix) != key,
                    "another timestamp has the same replay key")
            }
            // Pairs among the first 16 signatures: equal keys iff equal MACs.
            let macs = zip(words.dropFirst(), keys).prefix(16).compactMap { word, key in
                key.map { (key: $0, mac: Hex.decode(String(word.dropFirst(prefix.count)))) }
            }
            for a in macs {
                for b in macs { check((a.key == b.key) == (a.mac == b.mac), "replay keys disagree with their MACs") }
            }
        }
    }

    /// Teams: `HMAC ` + base64 of the HMAC (libsodium's strict decoder).
    static func teams(_ header: String, _ body: [UInt8], _ expected: [UInt8]) {
        let encoded = SecretsCrypto.base64(expected)
        check(SecretsCrypto.base64Decode(Array(encoded.utf8)) == expected, "base64 of the HMAC does not decode back")
        guard header.hasPrefix("HMAC ") else { return }
        let text = Array(header.utf8.dropFirst(5))
        if let given = SecretsCrypto.base64Decode(text) {
            check(Array(SecretsCrypto.base64(given).utf8) == text, "base64 decoding accepted a non-canonical text")
            if Sodium.constantTimeEquals(given, expected) {
                check(text == Array(encoded.utf8), "a Teams HMAC matched another text")
            }
        }
    }
}
