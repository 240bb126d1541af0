import Testing

@testable import DravenCore
@testable import DravenFunctions

@Suite struct ProblemTests {
    /// Every DravenError case maps to a problem with a stable type and the status DESIGN.md gives.
    @Test(arguments: [
        (DravenError.malformed("x"), 400, "malformed-request"),
        (.invalidField(pointer: "/ref", reason: "bad"), 422, "invalid-field"),
        (.unsupportedMediaType(expected: "application/json", got: nil), 415, "unsupported-media-type"),
        (.bodyTooLarge(limit: 10), 413, "body-too-large"),
        (.methodNotAllowed(allowed: ["POST"]), 405, "method-not-allowed"),
        (.unauthenticated, 401, "unauthenticated"),
        (.forbidden(action: "deploy", project: "p", environment: "e"), 403, "forbidden"),
        (.policyDenied(rule: "refs", detail: "d"), 403, "policy-denied"),
        (.notFound(what: "x"), 404, "not-found"),
        (.unknownChatUser(platform: "slack", userID: "U1"), 403, "unknown-chat-user"),
        (.environmentBusy(environment: "e", heldBy: 1), 409, "environment-busy"),
        (.conflict("x"), 409, "conflict"),
        (.idempotencyKeyReused, 422, "idempotency-key-reused"),
        (.storeNotReady("x"), 503, "store-not-ready"),
        (.tooManyRequests(retryAfter: 3), 429, "too-many-requests"),
    ])
    func mapping(_ error: DravenError, _ status: Int, _ type: String) throws {
        let response = Problem(error).response
        #expect(response.status == status)
        #expect(response.headers.first { $0.0 == "Content-Type" }?.1 == "application/problem+json")
        let body = try JSON.parse(response.body)
        #expect(body["type"]?.stringValue == "https://draven.dev/problems/" + type)
        #expect(body["status"]?.intValue == Int64(status))
        let detail = body["detail"]?.stringValue ?? ""
        #expect(detail.count > 0)
    }

    @Test func unknownErrorsAre500WithOnlyARequestID() throws {
        struct Secretive: Error { var token = "drv_secret" }
        let response = Problem(any: Secretive(), requestID: "abc123").response
        #expect(response.status == 500)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.contains("abc123") && !text.contains("drv_secret"))
    }

    @Test func lowerLayersMapHereToo() {
        #expect(Problem(any: JSONParseError(offset: 3, reason: "x"), requestID: "r").status == 400)
        #expect(
            Problem(any: SQLiteError(code: 5, message: "database is locked", sql: nil), requestID: "r").status == 503)
    }
}

@Suite struct RequestTests {
    @Test func mediaTypeIgnoresParametersAndCase() throws {
        let r = Request(
            method: "POST", path: "/", contentType: "Application/JSON; charset=utf-8", body: Array("{}".utf8))
        #expect(r.mediaType == "application/json")
        #expect(try r.jsonBody() == .object([:]))
        let problem = Request(method: "POST", path: "/", contentType: "application/jsonx", body: Array("{}".utf8))
        #expect(throws: DravenError.unsupportedMediaType(expected: "application/json", got: "application/jsonx")) {
            try problem.jsonBody()
        }
    }

    @Test func queryItemsArePercentDecoded() {
        let r = Request(method: "GET", path: "/", query: "project=my%20shop&state=queued&x=a+b&flag")
        #expect(r.queryItems == ["project": "my shop", "state": "queued", "x": "a b", "flag": ""])
    }

    @Test func routesMatchAndReportAllowedMethods() throws {
        let router = Router<Int>([(Route("GET", "/api/v1/jobs/{id}"), 1), (Route("POST", "/api/v1/deploys"), 2)])
        let (handler, params) = try router.resolve(Request(method: "GET", path: "/api/v1/jobs/42/"))
        #expect(handler == 1 && params["id"] == "42")
        #expect(throws: DravenError.methodNotAllowed(allowed: ["POST"])) {
            try router.resolve(Request(method: "GET", path: "/api/v1/deploys"))
        }
        #expect(throws: DravenError.notFound(what: "no route for GET /nope")) {
            try router.resolve(Request(method: "GET", path: "/nope"))
        }
        #expect(throws: DravenError.notFound(what: "no id x")) { try ["id": "x"].id("id") }
    }

    @Test func cgiHeaderNames() {
        for (cgi, header) in [
            ("X_HUB_SIGNATURE_256", "x-hub-signature-256"), ("CONTENT_TYPE", "content-type"),
            ("X_GITHUB_DELIVERY", "x-github-delivery"), ("Mixed_Case_9", "mixed-case-9"), ("", ""),
        ] {
            let name = Array(cgi.utf8).withUnsafeBufferPointer { CGI.headerName($0) }
            #expect(name == header)
        }
    }

    @Test func cgiResponseBytes() {
        let bytes = Response(status: 201, json: ["a": 1], headers: [("Location", "/x")]).cgiBytes()
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == "Status: 201 Created\r\nContent-Type: application/json\r\nLocation: /x\r\n"
                + "Content-Length: 8\r\n\r\n{\"a\":1}\n"
        )
    }
}
