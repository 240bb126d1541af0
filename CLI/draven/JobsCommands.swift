import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven jobs`: recent jobs the token's person may read (`GET /api/v1/jobs`), newest first.
    struct JobsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "jobs", abstract: "List recent jobs you may read, newest first (through the API).")
        @Option(help: "Only this project's jobs.") var project: String?
        @Option(help: "Only jobs of this environment.") var environment: String?
        @Option(help: "Only jobs in this state.", completion: .list(JobState.allCases.map(\.rawValue)))
        var state: String?
        @Option(help: "At most this many (1 to 500; default 50).") var limit: Int?
        @Flag(help: "Print the API's JSON instead of a table.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let path =
                "/api/v1/jobs"
                + query([
                    ("project", project), ("environment", environment), ("state", state),
                    ("limit", limit.map(String.init)),
                ])
            let answer = try api.client().json("GET", path)
            if json { return writeOut(answer.bytes + [0x0a]) }
            let jobs = answer.json["jobs"]?.arrayValue ?? []
            guard !jobs.isEmpty else { return print("no jobs") }
            let now = Int64(Date().timeIntervalSince1970)
            let rows = jobs.map { job in
                [
                    String(job["id"]?.intValue ?? 0), Text.field(job, "kind"), Text.target(job), Text.field(job, "ref"),
                    Text.field(job, "state"), ended(job) ? "" : Text.progress(job), Text.field(job, "requested_by"),
                    Text.seconds(job["updated_at"]?.stringValue).map { Text.span(now - $0) + " ago" } ?? "",
                ]
            }
            print(Text.table(["ID", "KIND", "PROJECT/ENV", "REF", "STATE", "PROGRESS", "BY", "UPDATED"], rows))
        }

        /// An ended job's progress is its runner's last report, not what is happening: not shown.
        func ended(_ job: JSON) -> Bool { JobState(rawValue: job["state"]?.stringValue ?? "")?.isTerminal ?? false }
    }

    /// `draven status JOB`: one job and its history (`GET /api/v1/jobs/{id}`); `--wait` follows it.
    struct StatusCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Show a job and its history (through the API); --wait follows it.",
            discussion: "Exit codes as for `draven deploy` (with --wait: 0 only when the job succeeded).")
        @Argument(help: "The job's id.") var job: Int64
        @OptionGroup var watch: WatchOptions
        @Flag(help: "Print the API's JSON instead of text.") var json = false
        @OptionGroup var api: APIOptions

        func validate() throws { try watch.validate() }

        func run() throws {
            let client = try api.client()
            var shown = try client.json("GET", "/api/v1/jobs/\(job)")
            if watch.wait { shown = try JobWatch(client: client, job: job, options: watch).run() }
            if json {
                writeOut(shown.bytes + [0x0a])
            } else {
                print(Self.render(shown.json))
            }
            if watch.wait { throw JobWatch.exit(for: shown.json) }
        }

        /// The job as labelled lines, then its history as a table.
        static func render(_ job: JSON, now: Int64 = Int64(Date().timeIntervalSince1970)) -> String {
            let id = job["id"]?.intValue ?? 0
            var lines = ["job \(id): \(Text.field(job, "kind")) of \(Text.field(job, "ref")) to \(Text.target(job))"]
            func add(_ label: String, _ value: String) {
                guard !value.isEmpty else { return }
                lines.append((label + ":").padding(toLength: 11, withPad: " ", startingAt: 0) + value)
            }
            var state = Text.field(job, "state")
            if let token = job["fencing_token"]?.intValue { state += " (fencing token \(token))" }
            add("state", state)
            let progress = Text.progress(job)
            if !progress.isEmpty {
                add("progress", progress + " (heartbeat \(Text.when(job["heartbeat_at"]?.stringValue, now: now)))")
            }
            add("sha", Text.field(job, "sha"))
            let reason = Text.field(job, "reason")
            add(
                "asked by",
                Text.field(job, "requested_by") + ", " + Text.when(job["created_at"]?.stringValue, now: now)
                    + (reason.isEmpty ? "" : ": \(reason)"))
            add("run", Text.field(job, "run_id"))
            add("log", Text.field(job, "log_url"))
            if let parent = job["parent_job_id"]?.intValue { add("after job", String(parent)) }
            if let release = job["to_release"]?.intValue { add("to release", String(release)) }
            add("updated", Text.when(job["updated_at"]?.stringValue, now: now))
            let events = job["events"]?.arrayValue ?? []
            if !events.isEmpty {
                lines.append("")
                let rows = events.map { event in
                    let from = Text.field(event, "from")
                    let to = Text.field(event, "to")
                    return [
                        Text.field(event, "at"), Text.field(event, "event"),
                        to.isEmpty ? "" : (from.isEmpty ? "→ " : from + " → ") + to, Text.field(event, "actor"),
                        Text.detail(event["detail"]),
                    ]
                }
                lines.append(Text.table(["AT", "EVENT", "STATE", "BY", "DETAIL"], rows))
            }
            return lines.joined(separator: "\n")
        }
    }
}
