import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

extension Draven {
    /// `draven sweep`: the time-driven work. Each pass moves jobs whose approval window closed to
    /// `expired`, times out running jobs whose lease ran out (no heartbeat: lock freed, failure
    /// policy applied, next queued job started), fails jobs stuck in `dispatching` with nothing
    /// left to deliver, queues a poll of runs the provider has been silent about, prunes archived
    /// logs past `logs.retention` and compresses the log chunks stored since, then delivers
    /// the outbox rows that are due (dispatches, retries with backoff, polls, cancels,
    /// notifications). Safe to run in several processes at once and alongside requests: every
    /// change re-checks its condition under the write lock, and each outbox row is claimed once.
    ///
    /// As a service (`--every 5s`) it keeps one connection to the store open for its whole
    /// life: with WAL, the last connection to close checkpoints and deletes the WAL, which every
    /// per-request process would otherwise pay (DESIGN.md); and it checkpoints the WAL after each
    /// pass, so the requests do not. It also takes the outbox rows each function commits and
    /// delivers them at once (`DeliveryService`). Functions stay correct without it.
    struct Sweep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Expire, time out, poll, prune and compress logs, deliver: once (--once) or every interval "
                + "(--every 5s).")
        @OptionGroup var state: StateOptions
        @Flag(help: "Run one pass and exit (for a timer or cron).") var once = false
        @Option(help: "Run as a service, one pass per interval (e.g. 5s, 500ms, 1m).") var every: String?
        @Option(
            name: .customLong("poll-after"),
            help: "Ask the provider about a running job after this long without a webhook (default 5m).")
        var pollAfter = "5m"
        @Option(
            name: .customLong("dispatch-limit"),
            help: "Fail a job stuck in dispatching with nothing left to deliver after this long (default 15m).")
        var dispatchLimit = "15m"
        @Option(
            name: .customLong("checkpoint-every"),
            help: ArgumentHelp(
                "Sign an audit checkpoint at most this often when the chain's head moved "
                    + "(default 60s; with --once: each pass)."))
        var checkpointEvery = "60s"

        func validate() throws {
            guard once != (every != nil) else { throw ValidationError("give exactly one of --once or --every") }
            if let every, Self.interval(every) == nil {
                throw ValidationError("--every takes a duration such as 5s, 500ms or 1m")
            }
            let durations = [
                ("--poll-after", pollAfter), ("--dispatch-limit", dispatchLimit),
                ("--checkpoint-every", checkpointEvery),
            ]
            for (name, value) in durations where Self.interval(value).map({ $0 < 1 }) ?? true {
                throw ValidationError("\(name) takes a duration of at least 1s, such as 30s or 5m")
            }
        }

        static func interval(_ text: String) -> Double? {
            if text.hasSuffix("ms"), let n = Double(text.dropLast(2)), n > 0 { return n / 1000 }
            if text.hasSuffix("s"), let n = Double(text.dropLast()), n > 0 { return n }
            if text.hasSuffix("m"), let n = Double(text.dropLast()), n > 0 { return n * 60 }
            return nil
        }

        func run() throws {
            let db = try state.open()  // held open for the life of the service
            db.markHeldByService()
            let paths = state.paths
            let pause = every.flatMap(Self.interval) ?? 0
            let sweeper = Sweeper(
                pollAfter: Int64(Self.interval(pollAfter) ?? 300),
                dispatchLimit: Int64(Self.interval(dispatchLimit) ?? 900))
            let checkpointInterval = once ? 0 : Self.interval(checkpointEvery) ?? 60
            var checkpointer = Checkpointer(paths: CheckpointPaths(paths), every: checkpointInterval)
            if !once { DeliveryService.start(paths: paths) }  // delivers what functions hand over
            repeat {
                do {
                    let started = SweepPasses.micros()
                    let report = try sweeper.run(db, now: Clock.now())
                    if let summary = report.summary {
                        FileHandle.standardOutput.write(Data("\(Clock.rfc3339(Clock.now())) sweep: \(summary)\n".utf8))
                    }
                    let due = try Delivery.due(db, now: Clock.now())
                    if !due.isEmpty {
                        var delivery = Delivery(db: db, paths: paths, transport: CurlTransport())
                        let settled = try delivery.deliver(due)
                        let line = "\(Clock.rfc3339(Clock.now())) sweep: \(due.count) due, \(settled) handled\n"
                        FileHandle.standardOutput.write(Data(line.utf8))
                    }
                    // The pass, delivery included, for /metrics (draven_sweep_*: is the service running?).
                    try SweepPasses.record(db, micros: SweepPasses.micros() - started, now: Clock.now())
                    checkpointer.pass(db)
                    try db.checkpoint()  // here, so requests rarely pay one (see Database.checkpoint)
                } catch {
                    warn("\(Clock.rfc3339(Clock.now())) sweep: \(error)")
                    if once { throw ExitCode(1) }
                }
                if !once { Thread.sleep(forTimeInterval: pause) }
            } while !once
        }
    }
}

/// The sweep's audit checkpoint step: when this process can read the checkpoint key and append to
/// the log (the admin, or the single-user layout of `make run` and the tests), it signs the
/// chain's head each pass in which the head moved, at most once per interval. In the production
/// layout the sweep runs as the functions' user and cannot: draven-audit-checkpoint.timer runs
/// `draven audit checkpoint` as the admin instead (README, "Security notes").
struct Checkpointer {
    let paths: CheckpointPaths
    let every: Double
    var last = -Double.infinity
    var enabled: Bool

    init(paths: CheckpointPaths, every: Double) {
        self.paths = paths
        self.every = every
        enabled = paths.writable
        if !enabled {
            warn(
                "sweep: audit checkpoints off (cannot read \(paths.signingKey)); "
                    + "the admin's `draven audit checkpoint` writes them")
        }
    }

    mutating func pass(_ db: Database) {
        let now = Date().timeIntervalSince1970
        guard enabled, now - last >= every else { return }
        last = now
        let stamp = Clock.rfc3339(Clock.now())
        do {
            switch try AuditCheckpoints.write(db, paths, onlyIfMoved: true) {
            case .written(let cp, _): print("\(stamp) sweep: audit checkpoint at record \(cp.headID)")
            case .unchanged: break
            case .refused(let findings):
                for finding in findings { warn("\(stamp) sweep: audit: \(finding); no checkpoint signed") }
            }
        } catch {
            warn("\(stamp) sweep: audit checkpoint: \(error)")
        }
    }
}
