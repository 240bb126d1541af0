@testable import DravenCore
@testable import DravenFunctions

/// `cgi`: the CGI request reader (meta-variables → Request, header-name mapping, query and form
/// parsing). Input: `NAME=value` entries separated by NUL, an empty entry, then the body — what
/// fcgiwrap hands a function (environ strings cannot hold NUL; stdin can hold anything).
enum FuzzCGI {
    static func run(_ input: [UInt8]) {
        var entries: [ArraySlice<UInt8>] = []
        var stdin: [UInt8] = []
        var rest = input[...]
        while true {
            guard let nul = rest.firstIndex(of: 0) else {
                if !rest.isEmpty { entries.append(rest) }  // the environment ends without a body
                break
            }
            let entry = rest[..<nul]
            rest = rest[(nul + 1)...]
            if entry.isEmpty {
                stdin = Array(rest)
                break
            }
            entries.append(entry)
        }
        let request: Request
        do {
            request = try CGI.request(
                environment: { visit in
                    for entry in entries {
                        Array(entry).withUnsafeBufferPointer { all in
                            guard let eq = all.firstIndex(of: UInt8(ascii: "=")) else { return }
                            visit(
                                UnsafeBufferPointer(rebasing: all[..<eq]),
                                UnsafeBufferPointer(rebasing: all[(eq + 1)...]))
                        }
                    }
                }, limit: 1 << 20,
                body: { length in
                    guard length <= stdin.count else { throw DravenError.malformed("the body ended") }
                    return Array(stdin.prefix(length))
                })
        } catch let error as DravenError {
            switch error {
            case .malformed, .bodyTooLarge: return
            default: check(false, "readRequest threw \(error)")
            }
            return
        } catch {
            check(false, "readRequest threw \(error)")
            return
        }
        for name in request.headers.keys {
            check(
                !name.utf8.contains { (0x41...0x5a).contains($0) || $0 == UInt8(ascii: "_") },
                "header name \(name) is not lowercase with dashes")
        }
        _ = request.mediaType
        _ = request.header("X-Hub-Signature-256")
        _ = request.queryItems
        _ = request.formItems
        _ = try? request.jsonBody()
        _ = try? request.optionalJSONBody()
        if let (_, params) = try? router.resolve(request) { _ = try? params.id("id") }
    }

    /// Routes shaped like the functions' (Functions/*/main.swift).
    static let router = Router<Int>([
        (Route("POST", "/api/v1/deploy"), 0), (Route("GET", "/api/v1/jobs/{id}"), 1),
        (Route("POST", "/api/v1/jobs/{id}/heartbeat"), 2), (Route("POST", "/api/v1/jobs/{id}/approvals"), 3),
        (Route("POST", "/hooks/{provider}"), 4),
    ])
}

/// `form`: form bodies — the percent-decoding of `application/x-www-form-urlencoded` (GitHub's form
/// webhooks, Slack and Mattermost commands), Slack's `payload` JSON, Teams' message text, and the
/// JSON field reader of API bodies (BodyFields).
enum FuzzForm {
    static func run(_ input: [UInt8]) {
        let request = Request(method: "POST", path: "/", contentType: "application/x-www-form-urlencoded", body: input)
        let form = request.formItems
        for (key, value) in form {
            // Encoding every byte and decoding again gives the same text.
            check(percentEncoded(key).percentDecoded() == key, "percent round trip of a key")
            check(percentEncoded(value).percentDecoded() == value, "percent round trip of a value")
        }
        if let payload = form["payload"], let json = try? JSON.parse(payload, duplicateKeys: .lastWins) {
            _ = json["actions"]?.arrayValue?.first?["value"]?.stringValue
        }
        _ = try? WebhookPayload.decode(input, request: request, duplicateKeys: .lastWins)
        let text = String(decoding: input, as: UTF8.self)
        _ = ChatCommand.plainText(text)
        if let json = try? JSON.parse(input),
            let fields = try? BodyFields(json, fields: ["ref", "environment", "comment"], of: "a fuzz request")
        {
            _ = try? fields.string("ref", required: true, max: 255, numbers: true)
            _ = try? fields.string("comment", required: false, max: 1000)
        }
    }

    static func percentEncoded(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in s.utf8 { out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}
