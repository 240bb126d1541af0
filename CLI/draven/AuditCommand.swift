import ArgumentParser
import DravenCore

extension Draven {
    struct AuditCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit", abstract: "Inspect the audit trail.",
            subcommands: [Verify.self, Checkpoint.self, Export.self, Refusals.self])

        struct Verify: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check the audit trail's hash chain, then against the latest signed checkpoint.",
                discussion: "Each problem is printed as KIND: WHY (chain-broken, truncated, rewritten, backdated, "
                    + "no-checkpoint, bad-checkpoint) and the exit code is 1. Records after the latest checkpoint are "
                    + "reported as not yet covered: they are checked only for chaining.")
            @OptionGroup var state: StateOptions

            func run() throws {
                let report = try AuditVerifier.report(db: try state.open(), checkpoints: CheckpointPaths(state.paths))
                for finding in report.findings { warn("audit: \(finding)") }
                guard report.findings.isEmpty else { throw ExitCode(1) }
                var line = "audit trail intact: \(report.records) records"
                if let cp = report.checkpoint {
                    line += "; checkpoint of \(Clock.rfc3339(cp.at)) covers records up to \(cp.headID)"
                    line += " (\(cp.count) records)"
                    line += report.uncovered > 0 ? "; \(report.uncovered) after it, not yet covered" : ""
                } else {
                    line += " (no checkpoint yet)"
                }
                print(line)
            }
        }

        struct Checkpoint: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Sign the audit chain's head and append it to the checkpoint log and the system log.",
                discussion: "Needs the checkpoint key (<secrets-dir>/audit-signing.key, created by `draven init`): "
                    + "run it as the admin, e.g. from draven-audit-checkpoint.timer. Checks the records since the "
                    + "last checkpoint first and signs nothing (exit 1) if they do not verify.")
            @OptionGroup var state: StateOptions

            func run() throws {
                let paths = CheckpointPaths(state.paths)
                guard paths.writable else {
                    throw ValidationError(
                        "cannot read \(paths.signingKey) or write \(paths.log); "
                            + "run as the admin (`draven init` creates the key)")
                }
                switch try AuditCheckpoints.write(try state.open(), paths) {
                case .written(let cp, let journaled):
                    print("checkpoint: record \(cp.headID), \(cp.count) records, \(cp.headHash)")
                    let journal = journaled ? " and the system log" : " (no system log is listening)"
                    print("written to \(paths.log)" + journal)
                case .unchanged(let cp):
                    print("checkpoint unchanged: record \(cp.headID)")
                case .refused(let findings):
                    for finding in findings { warn("audit: \(finding)") }
                    warn("audit: nothing signed")
                    throw ExitCode(1)
                }
            }
        }

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the audit trail as JSON lines.")
            @OptionGroup var state: StateOptions
            @Option(help: "Only records after this id.") var after: Int64 = 0

            func run() throws {
                let db = try state.open()
                try Audit.export(db, after: after) { print($0.serialized()) }
            }
        }
    }
}
