import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

extension Draven {
    /// `draven approve JOB`: a vote through the HTTP API, as the person the token belongs to.
    struct ApproveCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "approve", abstract: "Approve a job awaiting approval (through the API).")
        @OptionGroup var vote: VoteOptions
        func run() throws { try vote.send("approve") }
    }

    /// `draven reject JOB`: ends a job awaiting approval.
    struct RejectCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reject", abstract: "Reject a job awaiting approval (through the API).")
        @OptionGroup var vote: VoteOptions
        func run() throws { try vote.send("reject") }
    }
}

struct VoteOptions: ParsableArguments {
    @Argument(help: "The job's id.") var job: Int64
    @Option(help: "A comment recorded with the vote.") var comment: String?
    @OptionGroup var api: APIOptions

    /// Posts the vote and prints the outcome; a refusal prints the problem's detail and exits 1.
    func send(_ decision: String) throws {
        var body: JSONObject = ["decision": .string(decision)]
        if let comment { body["comment"] = .string(comment) }
        let answer = try api.post("/api/v1/jobs/\(job)/approvals", body)
        let state = answer["job"]?["state"]?.stringValue ?? "?"
        let verb = decision == "approve" ? "approved" : "rejected"
        let tally = "\(answer["approvals"]?.intValue ?? 0) of \(answer["required"]?.intValue ?? 0)"
        if answer["counted"]?.boolValue == false {
            print("job \(job): your vote was already counted (\(tally) approvals); the job is \(state)")
        } else {
            print("job \(job): \(verb) (\(tally) approvals); the job is \(state)")
        }
    }
}
