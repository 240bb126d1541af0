import ArgumentParser
import DravenCore

extension Draven {
    struct AuditCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit", abstract: "Inspect the audit trail.",
            subcommands: [Verify.self, Export.self, Refusals.self])

        struct Verify: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Check the audit trail's hash chain.")
            @OptionGroup var state: StateOptions

            func run() throws {
                let db = try state.open()
                let count = try db.scalar("SELECT count(*) FROM audit") ?? 0
                if let bad = try Audit.verify(db) {
                    warn("audit trail broken at record \(bad): it or a record before it was changed, removed or reordered")
                    throw ExitCode(1)
                }
                print("audit trail intact: \(count) records")
            }
        }

        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the audit trail as JSON lines.")
            @OptionGroup var state: StateOptions
            @Option(help: "Only records after this id.") var after: Int64 = 0

            func run() throws {
                let db = try state.open()
                _ = try db.query("SELECT id, at, actor, action, subject, outcome, detail, hash FROM audit WHERE id > ?1 ORDER BY id", [.int(after)]) { row in
                    let line: JSON = .object([
                        "id": .int(row.int(0)), "at": .string(Clock.rfc3339(row.int(1))), "actor": .string(row.text(2)),
                        "action": .string(row.text(3)), "subject": .string(row.text(4)), "outcome": .string(row.text(5)),
                        "detail": (try? JSON.parse(row.text(6))) ?? .null, "hash": .string(row.text(7)),
                    ])
                    print(line.serialized())
                }
            }
        }
    }
}
