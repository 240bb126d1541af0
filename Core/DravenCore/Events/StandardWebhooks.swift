/// The Standard Webhooks scheme (https://www.standardwebhooks.com, PyPI `standardwebhooks` is its
/// reference): a message is sent with `webhook-id`, `webhook-timestamp` (Unix seconds) and
/// `webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`, where
/// the key is the base64 after `whsec_` in the secret both sides hold. draven signs its events
/// with it (`Delivery.event`) and verifies GitLab's webhooks with it (`GitLabSignature`).
package enum StandardWebhooks {
    /// The HMAC key of a `whsec_<base64>` secret (the prefix and the padding may be left out, as
    /// the reference implementation allows), or nil when it is not base64 of at least one byte.
    package static func key(_ secret: SecretBytes) -> SecretBytes? {
        let decoded: [UInt8]? = secret.withUnsafeBytes { raw in
            var text = Array(raw.starts(with: Array("whsec_".utf8)) ? raw.dropFirst(6) : raw[...])
            defer { Sodium.wipe(&text) }
            while text.count % 4 != 0 { text.append(UInt8(ascii: "=")) }
            return SecretsCrypto.base64Decode(text)
        }
        guard var bytes = decoded, !bytes.isEmpty else { return nil }
        defer { Sodium.wipe(&bytes) }
        return SecretBytes(copying: bytes, label: "standard webhooks key")
    }

    /// The `webhook-signature` value of a message: `v1,` and the base64 of its MAC.
    package static func signature(key: SecretBytes, id: String, timestamp: Int64, body: [UInt8]) -> String {
        "v1,"
            + SecretsCrypto.base64(
                Sodium.hmacSHA256(key: key, prefix: Array("\(id).\(timestamp).".utf8), message: body))
    }
}
