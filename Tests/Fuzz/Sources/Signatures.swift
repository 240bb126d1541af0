@testable import DravenCore

/// `signatures`: every signature header draven parses, with a fixed key over the input's body.
/// Input: the header value (first line), then the body. GitHub `X-Hub-Signature-256: sha256=…`,
/// Bitbucket `X-Hub-Signature: sha256=…`, runner `X-Draven-Signature: v1=…` with
/// `X-Draven-Timestamp`, Slack `X-Slack-Signature: v0=…`, Teams `Authorization: HMAC <base64>`,
/// Mattermost `Authorization: Token …`. Properties: a header matches only if it is the prefix and
/// the hex (either case) of the HMAC; the right header always matches; base64 is canonical.
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
                check(Hex.decode(String(header.dropFirst(prefix.count))) == expected,
                      "\(prefix) matched a header that is not the HMAC")
            }
            let right = prefix + Hex.encode(expected)
            check(Sodium.hexSignatureMatches(right, prefix: prefix, expected: expected),
                  "the right \(prefix) header did not match")
            let upper = prefix + Hex.encode(expected).uppercased()
            check(Sodium.hexSignatureMatches(upper, prefix: prefix, expected: expected),
                  "the upper-case \(prefix) header did not match")
        }
        runner(header, body)
        teams(header, body, expected)
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
            _ = Sodium.hexSignatureMatches(signature, prefix: "v1=",
                                           expected: Sodium.hmacSHA256(key: key, message: signed))
        } catch DravenError.badSignature {
        } catch {
            check(false, "RunnerSignature.headers threw \(error)")
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
