import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

/// How a CLI command reaches draven's HTTP API as a person: the base URL and the person's API
/// token, which never goes on the command line (it comes from `$DRAVEN_TOKEN` or a file).
struct APIOptions: ParsableArguments {
    @Option(name: .customLong("api"), help: "draven's base URL (default: $DRAVEN_API or http://127.0.0.1:8080).")
    var api: String?
    @Option(
        name: .customLong("token-file"), help: "A file holding your API token (default: the token in $DRAVEN_TOKEN).")
    var tokenFile: String?

    /// A client holding the base URL and the token (read once, kept in a `SecretBytes`).
    func client() throws -> APIClient {
        let env = ProcessInfo.processInfo.environment
        let base = (api ?? env["DRAVEN_API"] ?? "http://127.0.0.1:8080").trimmingCharacters(
            in: CharacterSet(charactersIn: "/"))
        let token: SecretBytes
        if let tokenFile {
            token = try readValue(fromFile: tokenFile, keepNewline: false, label: "API token")
        } else if var value = env["DRAVEN_TOKEN"].map({ Array($0.utf8) }), !value.isEmpty {
            token = SecretBytes(copying: value, label: "API token")
            Sodium.wipe(&value)
        } else {
            throw ValidationError("set DRAVEN_TOKEN or pass --token-file")
        }
        return APIClient(base: base, token: token)
    }

    /// Posts `body` to `path` and returns the JSON answer; a refusal prints the problem's detail
    /// and exits 1, an unreachable API exits 2.
    func post(_ path: String, _ body: JSONObject) throws -> JSON {
        try client().json("POST", path, body: body).json
    }
}

/// The exit codes of the commands that talk to the API (README, "The CLI as a client").
enum ClientExit {
    /// The API refused the request (its problem's detail is printed).
    static let refused = ExitCode(1)
    /// draven could not be reached, or kept answering 5xx/429 for longer than a wait allows.
    static let unreachable = ExitCode(2)
}

/// One person's calls to draven's API. The token goes only into the `Authorization` header, as
/// libcurl sends it (never in argv or a URL, never printed). Paths are built by the commands from
/// numbers and percent-encoded query values.
struct APIClient {
    let base: String
    let token: SecretBytes
    var timeoutMS = 15_000

    /// What one call gave: an answer (any status), or why there was none.
    enum Attempt {
        case answered(OutboundResponse)
        case unreachable(String)
    }

    /// One call. `want` names response headers to read back.
    func attempt(
        _ method: String, _ path: String, body: JSONObject? = nil, headers extra: [(String, String)] = [],
        want: [String] = [], maxBytes: Int = 1 << 20
    ) -> Attempt {
        var headers = [("Accept", "application/json")] + extra
        if body != nil { headers.append(("Content-Type", "application/json")) }
        var request = OutboundRequest(
            method: method, url: base + path, headers: headers,
            body: body.map { JSON.object($0).serializedBytes() } ?? [],
            credential: .header(name: "Authorization", prefix: "Bearer "), secretName: nil, timeoutMS: timeoutMS)
        request.responseHeaders = want
        var transport = CurlTransport()
        transport.maxResponseBytes = maxBytes
        do {
            return .answered(try transport.send(request, credential: token))
        } catch {
            return .unreachable("\(error)")
        }
    }

    /// One call whose lack of an answer ends the command: "cannot reach", exit 2.
    func call(
        _ method: String, _ path: String, body: JSONObject? = nil, headers: [(String, String)] = [],
        want: [String] = [], maxBytes: Int = 1 << 20
    ) throws -> OutboundResponse {
        switch attempt(method, path, body: body, headers: headers, want: want, maxBytes: maxBytes) {
        case .answered(let response): return response
        case .unreachable(let why):
            warn("draven: cannot reach \(base): \(why)")
            throw ClientExit.unreachable
        }
    }

    /// A call that must answer 2xx with JSON: returns the document and its bytes; otherwise prints
    /// the problem's detail with the status and exits 1 (2 when draven cannot be reached).
    func json(_ method: String, _ path: String, body: JSONObject? = nil) throws -> (json: JSON, bytes: [UInt8]) {
        let response = try call(method, path, body: body)
        guard (200...299).contains(response.status), let answer = try? JSON.parse(response.body) else {
            throw refusal(response)
        }
        return (answer, response.body)
    }

    /// Prints why `response` is a refusal — the problem's detail, or the status alone — and
    /// returns the exit to throw.
    func refusal(_ response: OutboundResponse) -> ExitCode {
        let problem = try? JSON.parse(response.body)
        let detail = problem?["detail"]?.stringValue ?? "the API answered \(response.status)"
        warn("draven: \(Text.safe(detail)) (\(response.status))")
        return ClientExit.refused
    }

    /// Whether an answer is worth asking again for while waiting: draven is briefly unavailable
    /// (rate limit, the store busy, nginx unable to start a function).
    static func isTransient(_ status: Int) -> Bool {
        [429, 502, 503, 504].contains(status)
    }
}

/// `text` percent-encoded but for RFC 3986's unreserved characters: a query value or a path segment.
func percentEncoded(_ text: String) -> String {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
}

/// A query string from (name, value) pairs, nil values left out, values percent-encoded.
func query(_ items: [(String, String?)]) -> String {
    let pairs = items.compactMap { name, value in value.map { "\(name)=\(percentEncoded($0))" } }
    return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
}
