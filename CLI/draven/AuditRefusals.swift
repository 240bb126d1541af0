import ArgumentParser
import DravenCore

extension Draven.AuditCommand {
    /// `draven audit refusals`: the counted refusals of clients that proved no identity (they are
    /// not chained in the audit trail one by one; see `RefusalCounts`).
    struct Refusals: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show refusals of unauthenticated clients, counted per address, function, problem and hour.")
        @OptionGroup var state: StateOptions
        @Option(help: "Only counters seen in the last N hours (0: all).") var hours: Int64 = 24
        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func run() throws {
            let db = try state.open()
            let rows = try RefusalCounts.list(db, since: hours > 0 ? Clock.now() - hours * 3600 : 0)
            if json {
                for row in rows { print(row.serialized()) }
                return
            }
            print(
                ["HOUR", "CLIENT", "FUNCTION", "STATUS", "PROBLEM", "COUNT", "LAST", "LAST PATH"]
                    .joined(separator: "\t"))
            let columns = ["hour", "client", "function", "status", "problem", "count", "last_at", "last_path"]
            for case .object(let r) in rows {
                let cells = columns.map { key in r[key].map { $0.stringValue ?? $0.serialized() } ?? "" }
                print(cells.joined(separator: "\t"))
            }
        }
    }
}
