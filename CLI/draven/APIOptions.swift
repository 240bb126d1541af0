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

    /// Posts `body` to `path` and returns the JSON answer; a refusal prints the problem's detail
    /// and exits 1, an unreachable API exits 2.
    func post(_ path: String, _ body: JSONObject) throws -> JSON {
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
        let request = OutboundRequest(
            method: "POST", url: base + path,
            headers: [("Content-Type", "application/json"), ("Accept", "application/json")],
            body: JSON.object(body).serializedBytes(), credential: .header(name: "Authorization", prefix: "Bearer "),
            secretName: nil, timeoutMS: 15_000)
        let response: OutboundResponse
        do {
            response = try CurlTransport().send(request, credential: token)
        } catch {
            warn("draven: cannot reach \(base): \(error)")
            throw ExitCode(2)
        }
        let answer = try? JSON.parse(response.body)
        guard (200...299).contains(response.status), let answer else {
            let detail = answer?["detail"]?.stringValue ?? "the API answered \(response.status)"
            warn("draven: \(detail) (\(response.status))")
            throw ExitCode(1)
        }
        return answer
    }
}
