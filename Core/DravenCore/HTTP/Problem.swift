/// An RFC 9457 problem detail (`application/problem+json`).
package struct Problem: Sendable {
    package var status: Int
    /// A stable URI naming the kind of problem; clients switch on it.
    package var type: String
    package var title: String
    package var detail: String
    /// Extra members (e.g. `pointer`, `rule`), serialized after the standard ones.
    package var extensions: JSONObject = [:]
    package var headers: [(String, String)] = []

    package static let typeBase = "https://draven.dev/problems/"

    package init(status: Int, type: String, title: String, detail: String, extensions: JSONObject = [:]) {
        self.status = status
        self.type = Problem.typeBase + type
        self.title = title
        self.detail = detail
        self.extensions = extensions
    }

    package var response: Response {
        var body: JSONObject = [
            "type": .string(type), "title": .string(title), "status": .int(Int64(status)), "detail": .string(detail),
        ]
        for (k, v) in extensions.entries { body[k] = v }
        var response = Response(status: status, json: .object(body))
        response.headers[0] = ("Content-Type", "application/problem+json")
        response.headers += headers
        return response
    }
}
