import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

extension Draven {
    /// `draven approve JOB`: a vote through the HTTP API, as the person the token belongs to.
    struct ApproveCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a job awaiting approval (through the API).")
        @OptionGroup var vote: VoteOptions
        func run() throws { try vote.send("approve") }
    }

    /// `draven reject JOB`: ends a job awaiting approval.
    struct RejectCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reject", abstract: "Reject a job awaiting approval (through the API).")
        @OptionGroup var vote: VoteOptions
        func run() throws { try vote.send("reject") }
    }
}

struct VoteOptions: ParsableArguments {
    @Argument(help: "The job's id.") var job: Int64
    @Option(help: "A comment recorded with the vote.") var comment: String?
    @Option(name: .customLong("api"), help: "draven's base URL (default: $DRAVEN_API or http://127.0.0.1:8080).") var api: String?
    @Option(name: .customLong("token-file"), help: "A file holding your API token (default: the token in $DRAVEN_TOKEN).")
    var tokenFile: String?

    /// Posts the vote and prints the outcome; a refusal prints the problem's detail and exits 1.
    func send(_ decision: String) throws {
        let env = ProcessInfo.processInfo.environment
        let base = (api ?? env["DRAVEN_API"] ?? "http://127.0.0.1:8080").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        // The token never goes in argv: it comes from the environment or a file.
        let token: SecretBytes
        if let tokenFile {
            token = try readValue(fromFile: tokenFile, keepNewline: false, label: "API token")
        } else if var value = env["DRAVEN_TOKEN"].map({ Array($0.utf8) }), !value.isEmpty {
            token = SecretBytes(copying: value, label: "API token")
            Sodium.wipe(&value)
        } else {
            throw ValidationError("set DRAVEN_TOKEN or pass --token-file")
        }
        var body: JSONObject = ["decision": .string(decision)]
        if let comment { body["comment"] = .string(comment) }
        let request = OutboundRequest(method: "POST", url: "\(base)/api/v1/jobs/\(job)/approvals",
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
            warn("draven: \(answer?["detail"]?.stringValue ?? "the API answered \(response.status)") (\(response.status))")
            throw ExitCode(1)
        }
        let state = answer["job"]?["state"]?.stringValue ?? "?"
        let verb = decision == "approve" ? "approved" : "rejected"
        if answer["counted"]?.boolValue == false {
            print("job \(job): your vote was already counted (\(answer["approvals"]?.intValue ?? 0) of \(answer["required"]?.intValue ?? 0) approvals); the job is \(state)")
        } else {
            print("job \(job): \(verb) (\(answer["approvals"]?.intValue ?? 0) of \(answer["required"]?.intValue ?? 0) approvals); the job is \(state)")
        }
    }
}
