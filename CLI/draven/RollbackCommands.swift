import ArgumentParser
import DravenCore

extension Draven {
    /// `draven rollback PROJECT ENV [--to RELEASE]` or `draven rollback --job ID`: a manual
    /// rollback through the HTTP API, as the person the token belongs to.
    struct RollbackCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollback",
            abstract: "Roll an environment back to its previous (or a named) release, or undo a job (through the API).")
        @Argument(help: "The project (with ENV; not with --job).") var project: String?
        @Argument(help: "The environment.") var environment: String?
        @Option(
            name: .customLong("to"),
            help: "The release to go back to: its id, release_id, ref or sha (default: the one before the live one).")
        var toRelease: String?
        @Option(help: "Undo this job: back to what was live before it.") var job: Int64?
        @Option(help: "Why, for the job and the audit trail.") var reason: String?
        @OptionGroup var api: APIOptions

        func validate() throws {
            guard (job == nil) == (project != nil && environment != nil), job == nil || toRelease == nil else {
                throw ValidationError("give PROJECT ENV [--to RELEASE], or --job ID")
            }
        }

        func run() throws {
            var body: JSONObject = [:]
            if let reason { body["reason"] = .string(reason) }
            let answer: JSON
            if let job {
                answer = try api.post("/api/v1/jobs/\(job)/rollback", body)
            } else {
                body["project"] = .string(project ?? "")
                body["environment"] = .string(environment ?? "")
                if let toRelease { body["to_release"] = .string(toRelease) }
                answer = try api.post("/api/v1/rollbacks", body)
            }
            func text(_ key: String, _ missing: String) -> String { answer[key]?.stringValue ?? missing }
            print(
                "job \(answer["id"]?.intValue ?? 0): rollback of \(text("project", ""))/\(text("environment", ""))"
                    + " to \(text("ref", "?")) is \(text("state", "?"))"
            )
        }
    }

    /// `draven cancel JOB`: cancels a job that has not ended (the provider is asked to stop its run).
    struct CancelCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cancel", abstract: "Cancel a queued or running job (through the API).")
        @Argument(help: "The job's id.") var job: Int64
        @Option(help: "Why, for the job and the audit trail.") var reason: String?
        @OptionGroup var api: APIOptions

        func run() throws {
            let answer = try api.post("/api/v1/jobs/\(job)/cancel", reason.map { ["reason": .string($0)] } ?? [:])
            print("job \(job): \(answer["state"]?.stringValue ?? "?")")
        }
    }
}
