import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven doctor`: checks a store's invariants and exits non-zero naming what is wrong. Safe on
    /// a store in use (one read transaction; it writes nothing) and on a copy or a crashed one.
    struct DoctorCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "doctor",
            abstract: "Check the store: integrity, locks, job histories, the outbox, the audit chain. "
                + "Exit 1 naming what is wrong.")
        @OptionGroup var state: StateOptions
        @Flag(help: "Print the report as one JSON object.") var json = false

        func run() throws {
            let path = state.paths.database
            guard FileManager.default.fileExists(atPath: path) else {
                let dir = state.paths.stateDir
                throw ValidationError("no store at \(path); run `draven init --state-dir \(dir)` first")
            }
            let report: Doctor.Report
            do {
                let db = try Database(path: path, create: false)
                let pending = try Migrations.pending(db)
                if pending.isEmpty {
                    report = Doctor.check(db, now: Clock.now(), checkpoints: CheckpointPaths(state.paths))
                } else {
                    let why = "migrations not applied: \(pending.joined(separator: ", ")); run `draven migrate`"
                    report = .init(only: .init(.integrity, "schema", why))
                }
            } catch {
                report = .init(only: .init(.integrity, "store", "cannot read the store: \(error)"))
            }
            print(json ? Self.json(report).serialized() : Self.text(report), terminator: json ? "\n" : "")
            if !report.healthy { throw ExitCode(1) }
        }

        static func text(_ report: Doctor.Report) -> String {
            var out = ""
            for check in Doctor.Check.allCases {
                guard let found = report.findings[check] else {
                    out += "\(check.rawValue): not run\n"
                    continue
                }
                let count = found.count + (report.more[check] ?? 0)
                out += "\(check.rawValue): \(found.isEmpty ? "ok" : "\(count) problem(s)")\n"
                for finding in found { out += "  \(finding.subject): \(finding.message)\n" }
                if let more = report.more[check] { out += "  … and \(more) more\n" }
            }
            out += report.healthy ? "store healthy\n" : "store has problems: see above\n"
            return out
        }

        static func json(_ report: Doctor.Report) -> JSON {
            var checks = JSONObject()
            for check in Doctor.Check.allCases {
                let found = report.findings[check] ?? []
                checks[check.rawValue] = .object([
                    "ok": .bool(report.findings[check]?.isEmpty ?? false), "ran": .bool(report.findings[check] != nil),
                    "findings": .array(found.map(\.json)), "more": .int(Int64(report.more[check] ?? 0)),
                ])
            }
            return .object(["ok": .bool(report.healthy), "checks": .object(checks)])
        }
    }
}
