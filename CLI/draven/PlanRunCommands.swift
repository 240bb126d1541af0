import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven plan run PLAN [key=value…]`: `POST /api/v1/plans/{id}/runs`; with `--wait`, follows the run.
    struct RunPlan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Start a run of a plan's latest version; --wait follows it to the end.",
            discussion: """
                Exit codes: 0 the run started (with --wait: it succeeded); 1 the API refused it (the \
                reason is printed); 2 draven could not be reached; with --wait: 3 it failed, paused at a \
                failed step, was compensated or its compensation failed, 5 it was cancelled, 6 --timeout \
                passed first (the run goes on).
                """)
        @Argument(help: "The plan's id.") var plan: String
        @Argument(help: ArgumentHelp("The run's inputs.", valueName: "key=value")) var inputs: [String] = []
        @Option(help: "Why, for the run and the audit trail.") var reason: String?
        @Option(
            name: .customLong("idempotency-key"),
            help: "Send this Idempotency-Key: a retry with the same key gives the same run, not a second one.")
        var idempotencyKey: String?
        @OptionGroup var watch: WatchOptions
        @Flag(help: "Print the API's JSON (with --wait: the ended run) instead of text.") var json = false
        @OptionGroup var api: APIOptions

        func validate() throws {
            try watch.validate()
            _ = try PlanInputs.parse(inputs)
        }

        func run() throws {
            let client = try api.client()
            var body: JSONObject = ["inputs": .object(try PlanInputs.parse(inputs))]
            if let reason { body["reason"] = .string(reason) }
            let headers = idempotencyKey.map { [("Idempotency-Key", $0)] } ?? []
            let response = try client.call(
                "POST", "/api/v1/plans/" + percentEncoded(plan) + "/runs", body: body, headers: headers)
            guard (200...299).contains(response.status), let started = try? JSON.parse(response.body),
                let id = started["run_id"]?.intValue
            else { throw client.refusal(response) }
            let replayed =
                response.status == 200 ? " (the same request was made before with this key: the same run)" : ""
            guard watch.wait else {
                if json { return writeOut(response.body + [0x0a]) }
                return print(PlanRunText.line(started) + replayed)
            }
            if !json { print(PlanRunText.line(started) + replayed) }
            let ended = try PlanRunText.follow(client, run: id, options: watch)
            if json {
                writeOut(ended.bytes + [0x0a])
            } else {
                print(PlanRunText.outcome(ended.json))
            }
            throw PlanRunText.exit(for: ended.json)
        }
    }

    /// `draven plan status RUN`: `GET /api/v1/runs/{id}`.
    struct PlanStatus: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Show a plan run: its status, progress and every step.")
        @Argument(help: ArgumentHelp("The run's id.", valueName: "run")) var id: Int64
        @Flag(help: "Print the API's JSON instead of text.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let answer = try api.client().json("GET", "/api/v1/runs/\(id)")
            if json { return writeOut(answer.bytes + [0x0a]) }
            print(PlanRunText.render(answer.json))
        }
    }

    /// `draven plan runs [--status S]`: `GET /api/v1/runs`.
    struct ListRuns: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "runs", abstract: "List plan runs you may read, newest first.")
        @Option(
            help: ArgumentHelp(
                "Only runs in this status (running, paused, failed, succeeded, compensating, compensated, "
                    + "compensation_failed, cancelled), or stuck (no progress for 30 minutes, or past a timeout)."))
        var status: String?
        @Option(help: "At most this many runs (1 to 500).") var limit: Int?
        @Flag(help: "Print the API's JSON instead of a table.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let path = "/api/v1/runs" + query([("status", status), ("limit", limit.map(String.init))])
            let answer = try api.client().json("GET", path)
            if json { return writeOut(answer.bytes + [0x0a]) }
            let runs = answer.json["runs"]?.arrayValue ?? []
            guard !runs.isEmpty else { return print("no runs") }
            let rows = runs.map { run in
                [
                    String(run["run_id"]?.intValue ?? 0), Text.field(run, "plan"),
                    String(run["version"]?.intValue ?? 0),
                    Text.field(run, "status"), PlanRunText.percent(run), PlanRunText.current(run),
                    Text.field(run, "started_by"), Text.when(run["started_at"]?.stringValue),
                ]
            }
            print(Text.table(["RUN", "PLAN", "VERSION", "STATUS", "DONE", "CURRENT", "BY", "STARTED"], rows))
        }
    }

    /// `draven plan retry RUN STEP`: `POST /api/v1/runs/{id}/steps/{step}/retry`.
    struct RetryStep: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry", abstract: "Start a failed step of a paused or failed run again.",
            discussion: "The steps that succeeded are not run again; the step gets its retries afresh.")
        @Argument(help: ArgumentHelp("The run's id.", valueName: "run")) var id: Int64
        @Argument(help: "The failed step's id.") var step: String
        @Flag(help: "Print the API's JSON instead of a line.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let answer = try api.client().json("POST", "/api/v1/runs/\(id)/steps/\(percentEncoded(step))/retry")
            if json { return writeOut(answer.bytes + [0x0a]) }
            let now = Text.field(answer.json["steps"]?[step] ?? .null, "status")
            print("run \(id): step \(Text.safe(step)) is \(now); " + PlanRunText.line(answer.json))
        }
    }

    /// `draven plan cancel RUN [--reason R]`: `POST /api/v1/runs/{id}/cancel`.
    struct CancelRun: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cancel", abstract: "Cancel a plan run: its running steps' jobs are cancelled.",
            discussion: "Nothing is compensated. A run that has ended is refused (exit 1).")
        @Argument(help: ArgumentHelp("The run's id.", valueName: "run")) var id: Int64
        @Option(help: "Why, for the run and the audit trail.") var reason: String?
        @Flag(help: "Print the API's JSON instead of a line.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let body: JSONObject = reason.map { ["reason": .string($0)] } ?? [:]
            let answer = try api.client().json("POST", "/api/v1/runs/\(id)/cancel", body: body)
            if json { return writeOut(answer.bytes + [0x0a]) }
            print(PlanRunText.line(answer.json))
        }
    }

    /// `draven plan explain PLAN [key=value…]`: `POST /api/v1/plans/{id}/explain`.
    struct ExplainPlan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "explain",
            abstract: "Say, step by step, where policy, grants, approvals or a held lock would stop a run today.",
            discussion: """
                A dry run as you would start it: nothing is created. Each step would start, wait (for \
                approvals or a lock), be refused, be skipped, or come after a step that stops the run. \
                Exit 0 when answered, whatever it predicts; 1 refused (bad inputs, no such plan); 2 unreachable.
                """)
        @Argument(help: "The plan's id.") var plan: String
        @Argument(help: ArgumentHelp("The run's inputs.", valueName: "key=value")) var inputs: [String] = []
        @Flag(help: "Print the API's JSON instead of text.") var json = false
        @OptionGroup var api: APIOptions

        func validate() throws { _ = try PlanInputs.parse(inputs) }

        func run() throws {
            let body: JSONObject = ["inputs": .object(try PlanInputs.parse(inputs))]
            let answer = try api.client().json("POST", "/api/v1/plans/" + percentEncoded(plan) + "/explain", body: body)
            if json { return writeOut(answer.bytes + [0x0a]) }
            print(Self.render(answer.json))
        }

        static func render(_ answer: JSON) -> String {
            let head = "plan \(Text.field(answer, "plan")) version \(answer["version"]?.intValue ?? 0)"
            var lines: [String] = []
            if Text.field(answer, "would") == "refuse" {
                lines.append(head + ": the run would be refused: " + Text.field(answer, "why"))
            } else {
                let stops = (answer["stops_at"]?.arrayValue ?? []).compactMap(\.stringValue).map(Text.safe)
                lines.append(
                    head
                        + (stops.isEmpty
                            ? ": the run would go through"
                            : ": the run would stop at "
                                + stops.joined(separator: ", ")))
            }
            lines.append("")
            let rows = (answer["steps"]?.arrayValue ?? []).map { step in
                [
                    Text.field(step, "id"), Text.field(step, "type"), Text.field(step, "environment"),
                    Text.field(step, "would").uppercased(), Text.field(step, "why"),
                ]
            }
            lines.append(Text.table(["STEP", "TYPE", "ON", "WOULD", "WHY"], rows))
            return lines.joined(separator: "\n")
        }
    }
}

/// `key=value` arguments as a run's inputs.
enum PlanInputs {
    /// - Throws: `ValidationError` naming the argument without `=` or a key given twice.
    static func parse(_ arguments: [String]) throws -> JSONObject {
        var inputs = JSONObject()
        for argument in arguments {
            guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else {
                throw ValidationError("inputs are key=value; \(argument) has no key")
            }
            let key = String(argument[..<eq])
            guard inputs[key] == nil else { throw ValidationError("input \(key) is given twice") }
            inputs[key] = .string(String(argument[argument.index(after: eq)...]))
        }
        return inputs
    }
}

/// How the plan commands show a run.
enum PlanRunText {
    /// `run 7: plan release v3 is running — 40% (current: stage, api)`.
    static func line(_ run: JSON) -> String {
        var line =
            "run \(run["run_id"]?.intValue ?? 0): plan \(Text.field(run, "plan")) v\(run["version"]?.intValue ?? 0)"
            + " is \(Text.field(run, "status"))"
        let status = Text.field(run, "status")
        if status == "running" || status == "compensating" {
            line += " — \(percent(run))"
            let current = current(run)
            if !current.isEmpty { line += " (current: \(current))" }
        }
        return line
    }

    static func percent(_ run: JSON) -> String { "\(Int(((run["progress"]?.doubleValue ?? 0) * 100).rounded()))%" }

    static func current(_ run: JSON) -> String {
        (run["current_steps"]?.arrayValue ?? []).compactMap(\.stringValue).map(Text.safe).joined(separator: ", ")
    }

    /// Whether `--wait` stops: the run ended, or paused for a person.
    static func settled(_ run: JSON) -> Bool {
        guard let status = PlanRuns.Status(rawValue: run["status"]?.stringValue ?? "") else { return false }
        return status.isEnded || status == .paused
    }

    static func follow(_ client: APIClient, run: Int64, options: WatchOptions) throws -> (json: JSON, bytes: [UInt8]) {
        try Follow(client: client, path: "/api/v1/runs/\(run)", name: "run \(run)", options: options).run(
            describe: line, state: { Text.field($0, "status") }, ended: settled)
    }

    /// How the run ended, and what a person can do next.
    static func outcome(_ run: JSON) -> String {
        var text = line(run)
        let failed = Text.field(run["detail"] ?? .null, "failed_step")
        if !failed.isEmpty {
            text += "; step \(failed) failed: \(Text.field(run["steps"]?[failed] ?? .null, "reason"))"
            if Text.field(run, "status") == "paused" {
                text += "; retry it with `draven plan retry \(run["run_id"]?.intValue ?? 0) \(failed)`"
            }
        }
        let left = (run["detail"]?["compensation_left"]?.arrayValue ?? []).compactMap(\.stringValue).map(Text.safe)
        if !left.isEmpty { text += "; not undone: " + left.joined(separator: ", ") }
        return text
    }

    /// The command's exit for how the run ended (README: the exit codes).
    static func exit(for run: JSON) -> ExitCode {
        switch PlanRuns.Status(rawValue: run["status"]?.stringValue ?? "") {
        case .succeeded: .success
        case .cancelled: ExitCode(5)
        default: ExitCode(3)
        }
    }

    /// The run's heading lines, then one row per step.
    static func render(_ run: JSON) -> String {
        var lines = [line(run)]
        lines.append(
            "started by \(Text.field(run, "started_by")), \(Text.when(run["started_at"]?.stringValue))"
                + (Text.field(run, "reason").isEmpty ? "" : ": " + Text.field(run, "reason")))
        if let eta = run["estimated_completion"]?.stringValue {
            lines.append("estimated completion: \(Text.safe(eta))")
        }
        if let ended = run["ended_at"]?.stringValue { lines.append("ended: \(Text.when(ended))") }
        let outcome = outcome(run)
        if outcome != lines[0] { lines[0] = outcome }
        lines.append("")
        let steps = run["steps"]?.objectValue?.entries ?? []
        let rows = steps.map { (id, step) in
            [
                Text.safe(id), Text.field(step, "type"), Text.field(step, "status"),
                String(step["attempts"]?.intValue ?? 0), step["job_id"]?.intValue.map(String.init) ?? "",
                Text.field(step, "started_at"), Text.field(step, "completed_at"), Text.field(step, "reason"),
            ]
        }
        lines.append(Text.table(["STEP", "TYPE", "STATUS", "ATTEMPTS", "JOB", "STARTED", "ENDED", "REASON"], rows))
        return lines.joined(separator: "\n")
    }
}
