import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven logs JOB [--follow]`: the deploy's archived log (`GET /api/v1/jobs/{id}/log`), the
    /// bytes written to stdout exactly as the runner sent them. `--follow` asks again with
    /// `?after=<the last seq it got>` until the API says the log is complete (the job has ended).
    /// A log cut at the per-job cap says so on stderr (`Draven-Log-Truncated: true`).
    struct LogsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "logs", abstract: "Print a job's archived log (through the API); --follow until it ends.",
            discussion: """
                The log is written to stdout byte for byte as the runner sent it (control characters \
                and all: a CI log's colours stay); notes go to stderr. Exit codes: 0 the log was printed \
                (with --follow: to its end); 1 the API refused (no such job, or not yours to read); \
                2 draven could not be reached.
                """)
        @Argument(help: "The job's id.") var job: Int64
        @Flag(name: [.customShort("f"), .long], help: "Keep printing what the runner sends until the job ends.")
        var follow = false
        @Option(help: "Only the chunks after this sequence number (0: all).") var after: Int64 = 0
        @Option(help: "How often to ask for more while following (e.g. 500ms, 2s).") var every = "1s"
        @OptionGroup var api: APIOptions

        static let seqHeader = "Draven-Log-Seq"
        static let completeHeader = "Draven-Log-Complete"
        static let truncatedHeader = "Draven-Log-Truncated"
        /// The largest answer read at once (the per-job cap is 10 MiB by default).
        static let maxBytes = 256 << 20

        func validate() throws {
            guard let interval = ClientDuration.seconds(every), interval >= 0.1 else {
                throw ValidationError("--every takes a duration of at least 100ms, such as 500ms or 2s")
            }
            guard after >= 0 else { throw ValidationError("--after takes a sequence number (0 or more)") }
        }

        func run() throws {
            var client = try api.client()
            client.timeoutMS = 120_000
            let every = ClientDuration.seconds(self.every) ?? 1
            var seq = after
            var saidTruncated = false
            var failingSince: Date?
            while true {
                let path = "/api/v1/jobs/\(job)/log" + (seq > 0 ? "?after=\(seq)" : "")
                let want = [Self.seqHeader, Self.completeHeader, Self.truncatedHeader]
                let attempt = client.attempt("GET", path, want: want, maxBytes: Self.maxBytes)
                var problem: String?
                switch attempt {
                case .answered(let r) where r.status == 200:
                    failingSince = nil
                    writeOut(r.body)
                    if let next = r.headers[Self.seqHeader].flatMap({ Int64($0.trimmingCharacters(in: .whitespaces)) }),
                        next >= seq
                    {
                        seq = next
                    } else if !r.body.isEmpty {
                        warn("draven: the API's answer has no \(Self.seqHeader); cannot ask for what follows")
                        throw ClientExit.refused
                    }
                    if !saidTruncated, Self.flag(r.headers[Self.truncatedHeader]) {
                        saidTruncated = true
                        warn("draven: the log of job \(job) was cut at the per-job cap; what came after is not kept")
                    }
                    let complete = Self.flag(r.headers[Self.completeHeader])
                    if complete { return }
                    if !follow {
                        warn("draven: job \(job) has not ended; its log goes on (draven logs \(job) --follow)")
                        return
                    }
                case .answered(let r) where follow && APIClient.isTransient(r.status):
                    problem = "the API answered \(r.status)"
                case .answered(let r):
                    throw client.refusal(r)
                case .unreachable(let why):
                    guard follow else {
                        warn("draven: cannot reach \(client.base): \(why)")
                        throw ClientExit.unreachable
                    }
                    problem = why
                }
                if let problem {
                    let since = failingSince ?? Date()
                    if failingSince == nil {
                        failingSince = since
                        warn("draven: \(problem); asking again")
                    }
                    if Date().timeIntervalSince(since) > Follow.patience {
                        warn("draven: cannot reach \(client.base) for \(Int(Follow.patience))s: \(problem)")
                        throw ClientExit.unreachable
                    }
                }
                Thread.sleep(forTimeInterval: every)
            }
        }

        static func flag(_ value: String?) -> Bool {
            value?.trimmingCharacters(in: .whitespaces).lowercased() == "true"
        }
    }
}
