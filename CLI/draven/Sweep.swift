import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

extension Draven {
    /// `draven sweep`: the time-driven work: moves jobs whose approval window closed to
    /// `expired`, then delivers outbox rows that are due (retries with backoff, rows whose
    /// deliverer died, the chat updates of expired jobs). Safe to run in several processes at
    /// once and alongside requests: each row is claimed in a transaction.
    ///
    /// As a service (`--every 5s`) it keeps one connection to the store open for its whole
    /// life: with WAL, the last connection to close checkpoints and deletes the WAL, which every
    /// per-request process would otherwise pay (DESIGN.md). Functions stay correct without it.
    struct Sweep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Expire unapproved jobs and deliver due outbox rows, once (--once) or every interval (--every 5s).")
        @OptionGroup var state: StateOptions
        @Flag(help: "Run one pass and exit (for a timer or cron).") var once = false
        @Option(help: "Run as a service, one pass per interval (e.g. 5s, 500ms, 1m).") var every: String?

        func validate() throws {
            guard once != (every != nil) else { throw ValidationError("give exactly one of --once or --every") }
            if let every, Self.interval(every) == nil { throw ValidationError("--every takes a duration such as 5s, 500ms or 1m") }
        }

        static func interval(_ text: String) -> Double? {
            if text.hasSuffix("ms"), let n = Double(text.dropLast(2)), n > 0 { return n / 1000 }
            if text.hasSuffix("s"), let n = Double(text.dropLast()), n > 0 { return n }
            if text.hasSuffix("m"), let n = Double(text.dropLast()), n > 0 { return n * 60 }
            return nil
        }

        func run() throws {
            let db = try state.open()  // held open for the life of the service
            let paths = state.paths
            let pause = every.flatMap(Self.interval) ?? 0
            repeat {
                do {
                    let expired = try Approvals.expireDue(db, now: Clock.now())
                    try ChatOps.forgetOldSignatures(db, now: Clock.now())
                    if !expired.isEmpty {
                        FileHandle.standardOutput.write(Data("\(Clock.rfc3339(Clock.now())) sweep: expired \(expired.map { "#\($0)" }.joined(separator: " "))\n".utf8))
                    }
                    let due = try Delivery.due(db, now: Clock.now())
                    if !due.isEmpty {
                        var delivery = Delivery(db: db, paths: paths, transport: CurlTransport())
                        let settled = try delivery.deliver(due)
                        FileHandle.standardOutput.write(Data("\(Clock.rfc3339(Clock.now())) sweep: \(due.count) due, \(settled) handled\n".utf8))
                    }
                } catch {
                    warn("\(Clock.rfc3339(Clock.now())) sweep: \(error)")
                    if once { throw ExitCode(1) }
                }
                if !once { Thread.sleep(forTimeInterval: pause) }
            } while !once
        }
    }
}
