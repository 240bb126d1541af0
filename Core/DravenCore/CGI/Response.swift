/// One HTTP response, written in CGI form: a `Status:` line, headers, a blank line, the body.
package struct Response: Sendable {
    package var status: Int
    package var headers: [(String, String)]
    package var body: [UInt8]

    package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response; `headers[0]` is the Content-Type.
    package init(status: Int, json: JSON, headers: [(String, String)] = []) {
        self.init(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: json.serializedBytes())
        self.body.append(UInt8(ascii: "\n"))
    }

    package static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8")
        -> Response
    {
        Response(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    /// The bytes a CGI script writes to stdout (RFC 3875 §6).
    package func cgiBytes() -> [UInt8] {
        var head = "Status: \(status) \(Response.reason(status))\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        var out = Array(head.utf8)
        out.append(contentsOf: body)
        return out
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 503: "Service Unavailable"
        default: status < 500 ? "Client Error" : "Server Error"
        }
    }
}
