import Testing

@testable import DravenCore

@Suite struct SignedRequestTests {
    @Test func timestampsAreDigitsOnly() {
        #expect(SignedRequest.timestamp("1700000000") == 1_700_000_000)
        #expect(SignedRequest.timestamp("0") == 0)
        for bad in [
            nil, "", "+1700000000", "01700000000", " 1700000000", "1700000000 ", "-5", "1.7e9", "1700000000.0",
            "１７", "9999999999999",
        ] {
            #expect(SignedRequest.timestamp(bad) == nil, "\(bad ?? "nil")")
        }
    }

    /// However the hex is written, the same signature (and timestamp) is the same replay record.
    @Test func replayKeysAreCanonical() {
        let lower = SignedRequest.replayKey(timestamp: 1_700_000_000, hexSignature: "v1=abcdef01", prefix: "v1=")
        #expect(lower == "1700000000:abcdef01")
        #expect(SignedRequest.replayKey(timestamp: 1_700_000_000, hexSignature: "v1=ABCDEF01", prefix: "v1=") == lower)
        #expect(SignedRequest.replayKey(timestamp: 1_700_000_000, hexSignature: "v1=AbCdEf01", prefix: "v1=") == lower)
        #expect(SignedRequest.replayKey(timestamp: 1_700_000_001, hexSignature: "v1=abcdef01", prefix: "v1=") != lower)
        #expect(SignedRequest.replayKey(timestamp: 1, hexSignature: "v1=xyz", prefix: "v1=") == nil)
        #expect(SignedRequest.replayKey(timestamp: 1, hexSignature: "v0=abcdef01", prefix: "v1=") == nil)
    }

    // A vector made with the reference implementation (PyPI standardwebhooks 1.1.0):
    // Webhook(secret).sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1700000000, #"{"object_kind":"pipeline"}"#).
    static let secret = "whsec_dW5pdC10ZXN0LXNpZ25pbmcta2V5LTMyLWJ5dGVzISE="
    static let signature = "v1,rWtNFcrVf5VfpOPiF5dfGvAbp9P2LibAxylbdjqIqdQ="

    static func request(
        id: String = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp: String = "1700000000",
        signature: String? = signature, body: String = #"{"object_kind":"pipeline"}"#
    ) -> Request {
        var headers = ["webhook-id": id, "webhook-timestamp": timestamp]
        headers["webhook-signature"] = signature
        return Request(
            method: "POST", path: "/hooks/gitlab", headers: headers, contentType: "application/json",
            body: Array(body.utf8))
    }

    @Test func gitlabSignaturesVerifyAsTheReferenceSigns() throws {
        let secret = SecretBytes(copying: Array(Self.secret.utf8), label: "test")
        let id = try GitLabSignature.verify(Self.request(), secret: secret, now: 1_700_000_100)
        #expect(id == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
        // Several signatures (a rotation): one v1 match suffices; other versions are ignored.
        let several = "v2,abc v1,bm90IGl0 " + Self.signature
        #expect(try GitLabSignature.verify(Self.request(signature: several), secret: secret, now: 1_700_000_000) != "")
        // The key without its prefix or padding is the same key.
        let bare = SecretBytes(copying: Array(Self.secret.dropFirst(6).dropLast().utf8), label: "test")
        #expect(try GitLabSignature.verify(Self.request(), secret: bare, now: 1_700_000_000) != "")
        let refused = [
            Self.request(body: #"{"object_kind":"pipelinE"}"#), Self.request(id: "msg_other"),
            Self.request(signature: nil),
            Self.request(signature: "v2," + Self.signature.dropFirst(3)),
            Self.request(timestamp: "+1700000000"), Self.request(timestamp: "1700000001"),
        ]
        for request in refused {
            #expect(throws: DravenError.self) {
                try GitLabSignature.verify(request, secret: secret, now: 1_700_000_010)
            }
        }
        // Five minutes, no more.
        for now: Int64 in [1_700_000_301, 1_699_999_699] {
            #expect(throws: DravenError.self) { try GitLabSignature.verify(Self.request(), secret: secret, now: now) }
        }
    }
}
