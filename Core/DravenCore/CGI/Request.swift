/// One HTTP request as CGI/1.1 (RFC 3875) hands it over: meta-variables in the environment, the
/// body on stdin.
package struct Request: Sendable {
    package var method: String
    /// The path without the query string, percent-decoding not applied.
    package var path: String
    package var query: String
    /// Header names lowercased with `-` (from `HTTP_X_GITHUB_EVENT` → `x-github-event`).
    package var headers: [String: String]
    package var contentType: String?
    package var body: [UInt8]
    package var remoteAddress: String
    /// Whether the request came over TLS: the `HTTPS` meta-variable is `on` (nginx passes
    /// `$https`; behind a TLS-terminating proxy the site sets it, see README "Console").
    package var isTLS = false

    package init(
        method: String, path: String, query: String = "", headers: [String: String] = [:],
        contentType: String? = nil, body: [UInt8] = [], remoteAddress: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.contentType = contentType
        self.body = body
        self.remoteAddress = remoteAddress
    }

    package func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The media type without parameters, lowercased (`application/json; charset=utf-8` → `application/json`).
    package var mediaType: String? {
        guard let contentType else { return nil }
        let base = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? contentType
        return base.trimmingSpaces().lowercased()
    }

    /// Parses the body as JSON, after checking the media type. A repeated key is refused unless
    /// `duplicateKeys` says otherwise (bodies a chat platform wrote).
    /// - Throws: `DravenError.unsupportedMediaType` unless `application/json` (or `+json`),
    ///   `.malformed` when the body is empty or not JSON.
    package func jsonBody(duplicateKeys: JSON.DuplicateKeys = .refuse) throws -> JSON {
        guard let type = mediaType, type == "application/json" || type.hasSuffix("+json") else {
            throw DravenError.unsupportedMediaType(expected: "application/json", got: contentType)
        }
        guard !body.isEmpty else { throw DravenError.malformed("the body is empty; send a JSON object") }
        return try JSON.parse(body, duplicateKeys: duplicateKeys)
    }

    /// The fields of an `application/x-www-form-urlencoded` body, percent-decoded.
    package var formItems: [String: String] {
        Request(method: "", path: "", query: String(decoding: body, as: UTF8.self)).queryItems
    }

    /// Query parameters (`a=1&b=2`), percent-decoded.
    package var queryItems: [String: String] {
        var items: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).percentDecoded()
            items[key] = parts.count > 1 ? String(parts[1]).percentDecoded() : ""
        }
        return items
    }
}

extension String {
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }

    /// Decodes `%XX` escapes and `+` as space (form/query encoding). Invalid escapes are kept.
    package func percentDecoded() -> String {
        var out: [UInt8] = []
        let u = Array(utf8)
        var i = 0
        while i < u.count {
            let c = u[i]
            if c == UInt8(ascii: "%"), i + 2 < u.count,
                let b = Hex.decode(String(decoding: u[i + 1...i + 2], as: UTF8.self))
            {
                out.append(b[0])
                i += 3
            } else {
                out.append(c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
