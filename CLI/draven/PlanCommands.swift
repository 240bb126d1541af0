import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven plan …`: deploy plans through the API, as the token's person.
    struct PlanCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan", abstract: "Apply, list, show, run, follow and explain deploy plans (through the API).",
            subcommands: planSubcommands)

        /// The `plan` subcommands.
        static let planSubcommands: [any ParsableCommand.Type] = [
            ApplyPlan.self, ListPlans.self, ShowPlan.self, RunPlan.self, PlanStatus.self, ListRuns.self, RetryStep.self,
            CancelRun.self, ExplainPlan.self,
        ]
    }

    /// `draven plan apply FILE`: `POST /api/v1/plans` with the file's document.
    struct ApplyPlan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply", abstract: "Apply a plan document (a JSON file) as its next version.",
            discussion: "An unchanged document keeps its version. A refusal prints the key at fault (exit 1).")
        @Argument(help: "The plan's JSON file.", completion: .file(extensions: ["json"])) var file: String
        @Flag(help: "Print the API's JSON instead of a line.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            let document: JSON
            do { document = try JSON.parse(Array(data)) } catch {
                throw ValidationError("\(file) is not valid JSON: \(error.reason) at byte \(error.offset)")
            }
            guard let object = document.objectValue else { throw ValidationError("\(file): a plan is a JSON object") }
            let client = try api.client()
            let response = try client.call("POST", "/api/v1/plans", body: object)
            guard [200, 201].contains(response.status), let answer = try? JSON.parse(response.body) else {
                throw client.refusal(response)
            }
            if json { return writeOut(response.body + [0x0a]) }
            let id = Text.field(answer, "id")
            let version = answer["version"]?.intValue ?? 0
            print(
                response.status == 201
                    ? "plan \(id): applied as version \(version)" : "plan \(id): unchanged (version \(version))")
        }
    }

    /// `draven plan list`: `GET /api/v1/plans`.
    struct ListPlans: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List the plans you may read, with their latest versions.")
        @Flag(help: "Print the API's JSON instead of a table.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let answer = try api.client().json("GET", "/api/v1/plans")
            if json { return writeOut(answer.bytes + [0x0a]) }
            let plans = answer.json["plans"]?.arrayValue ?? []
            guard !plans.isEmpty else { return print("no plans") }
            let rows = plans.map { plan in
                [
                    Text.field(plan, "id"), String(plan["version"]?.intValue ?? 0),
                    String(plan["steps"]?.intValue ?? 0),
                    Text.field(plan, "applied_by"), Text.when(plan["applied_at"]?.stringValue),
                    Text.field(plan, "description"),
                ]
            }
            print(Text.table(["ID", "VERSION", "STEPS", "APPLIED BY", "APPLIED", "DESCRIPTION"], rows))
        }
    }

    /// `draven plan show ID [--version N]`: `GET /api/v1/plans/{id}`.
    struct ShowPlan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Show a plan: its version, who applied it, and its steps.")
        @Argument(help: "The plan's id.") var id: String
        @Option(help: "An earlier version (default: the latest).") var version: Int64?
        @Flag(help: "Print the API's JSON instead of text.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let path = "/api/v1/plans/" + percentEncoded(id) + query([("version", version.map(String.init))])
            let answer = try api.client().json("GET", path)
            if json { return writeOut(answer.bytes + [0x0a]) }
            print(Self.render(answer.json))
        }

        /// The plan's heading lines, then one row per step.
        static func render(_ answer: JSON) -> String {
            let document = answer["document"] ?? .null
            var lines = ["plan \(Text.field(answer, "id")) version \(answer["version"]?.intValue ?? 0)"]
            let description = Text.field(document, "description")
            if !description.isEmpty { lines.append(description) }
            lines.append(
                "applied by \(Text.field(answer, "applied_by")), \(Text.when(answer["applied_at"]?.stringValue))")
            lines.append("on failure: \(Text.field(document, "on_failure"))")
            lines.append("")
            let steps = document["steps"]?.arrayValue ?? []
            let rows = steps.map { step in
                let after = (step["depends_on"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                return [
                    Text.field(step, "id"), Text.field(step, "type"), Self.what(step), after,
                    Text.field(step, "condition"),
                ]
            }
            lines.append(Text.table(["STEP", "TYPE", "WHAT", "AFTER", "CONDITION"], rows))
            return lines.joined(separator: "\n")
        }

        static func what(_ step: JSON) -> String {
            switch Text.field(step, "type") {
            case "deploy", "diagnostic":
                let ref = Text.field(step, "ref")
                return Text.target(step) + (ref.isEmpty ? "" : " " + ref)
            case "approval":
                let groups = (step["approver_groups"]?.arrayValue ?? []).compactMap(\.stringValue)
                let n = step["approvals"]?.intValue ?? 1
                return "\(n) of " + (groups.isEmpty ? "any approver" : groups.joined(separator: ", "))
            case "wait": return Text.field(step, "duration")
            case "check": return "\(Text.field(step["http"] ?? .null, "url_secret")) every \(Text.field(step, "every"))"
            default: return Text.field(step, "project") + ": " + Text.field(step, "message")
            }
        }
    }
}
