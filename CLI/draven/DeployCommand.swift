import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven deploy PROJECT ENV REF`: asks for a deploy through the API (`POST /api/v1/deploys`),
    /// as the person the token belongs to; with `--wait`, follows the job until it ends.
    struct DeployCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deploy",
            abstract: "Deploy a ref of a project to an environment (through the API); --wait follows it to the end.",
            discussion: """
                Exit codes: 0 the deploy was accepted (with --wait: it succeeded); 1 the API refused it \
                (the reason is printed); 2 draven could not be reached; with --wait: 3 the job failed, \
                4 it timed out (its runner went silent), 5 it was cancelled, rejected or its approvals \
                expired, 6 --timeout passed first (the job goes on).
                """)
        @Argument(help: "The project.") var project: String
        @Argument(help: "The environment.") var environment: String
        @Argument(help: "What to deploy: refs/heads/NAME, refs/tags/NAME, a commit sha, or a short name.")
        var ref: String
        @Option(
            name: .customLong("ref-kind"),
            help: ArgumentHelp(
                "What a short REF names: branch, tag or sha (needed unless the policy allows one kind).",
                valueName: "kind"),
            completion: .list(["branch", "tag", "sha"]))
        var refKind: String?
        @Option(help: "The full commit sha the ref should be at (40 or 64 hex digits).") var sha: String?
        @Option(help: "Why, for the job and the audit trail.") var reason: String?
        @Option(
            name: .customLong("idempotency-key"),
            help: "Send this Idempotency-Key: a retry with the same key gives the same job, not a second one.")
        var idempotencyKey: String?
        @OptionGroup var watch: WatchOptions
        @Flag(help: "Print the API's JSON (with --wait: the ended job, with its history) instead of text.")
        var json = false
        @OptionGroup var api: APIOptions

        func validate() throws { try watch.validate() }

        func run() throws {
            let client = try api.client()
            var body: JSONObject = [
                "project": .string(project), "environment": .string(environment), "ref": .string(ref),
            ]
            if let refKind { body["ref_kind"] = .string(refKind) }
            if let sha { body["sha"] = .string(sha) }
            if let reason { body["reason"] = .string(reason) }
            let headers = idempotencyKey.map { [("Idempotency-Key", $0)] } ?? []
            let response = try client.call("POST", "/api/v1/deploys", body: body, headers: headers)
            guard (200...299).contains(response.status), let created = try? JSON.parse(response.body),
                let id = created["id"]?.intValue
            else { throw client.refusal(response) }
            let replayed = response.status == 200
            guard watch.wait else {
                if json {
                    writeOut(response.body + [0x0a])
                } else {
                    print(Self.summary(created, replayed: replayed))
                }
                return
            }
            if !json { print(Self.summary(created, replayed: replayed)) }
            let ended = try JobWatch(client: client, job: id, options: watch).run()
            if json {
                writeOut(ended.bytes + [0x0a])
            } else {
                print(JobWatch.outcome(ended.json))
                for line in JobWatch.followUps(client, of: ended.json) { print(line) }
            }
            throw JobWatch.exit(for: ended.json)
        }

        /// `job 12: deploy of refs/heads/main to shop/demo is dispatching`.
        static func summary(_ job: JSON, replayed: Bool) -> String {
            let id = job["id"]?.intValue ?? 0
            let state = Text.field(job, "state")
            var line = "job \(id): deploy of \(Text.field(job, "ref")) to \(Text.target(job)) is \(state)"
            if replayed { line += " (the same request was made before with this key: the same job)" }
            if state == JobState.awaitingApproval.rawValue { line += "; approve it with `draven approve \(id)`" }
            return line
        }
    }
}

/// `--wait` and how it polls, shared by the commands that follow a job.
struct WatchOptions: ParsableArguments {
    @Flag(
        help: "Follow the job until it ends, with a progress line (state, step, percent); exit 0 only if it succeeded.")
    var wait = false
    @Option(help: "How often to ask about the job while waiting (e.g. 500ms, 2s).")
    var every = "1s"
    @Option(help: "Stop waiting after this long (e.g. 90s, 10m, 1h; exit 6; the job goes on). Default: no limit.")
    var timeout: String?

    func validate() throws {
        guard let interval = ClientDuration.seconds(every), interval >= 0.1 else {
            throw ValidationError("--every takes a duration of at least 100ms, such as 500ms or 2s")
        }
        if let timeout, ClientDuration.seconds(timeout) == nil {
            throw ValidationError("--timeout takes a duration such as 90s, 10m or 1h")
        }
        if timeout != nil && !wait { throw ValidationError("--timeout goes with --wait") }
    }
}

/// Durations on the command line: `500ms`, `5s`, `10m`, `1h`.
enum ClientDuration {
    static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Double(text.dropLast(suffix.count)), n > 0, n.isFinite else { return nil }
            return n * scale
        }
        return nil
    }
}

/// Follows one job by polling `GET /api/v1/jobs/{id}` until it ends (`Follow`).
struct JobWatch {
    let client: APIClient
    let job: Int64
    let options: WatchOptions

    /// - Returns: the ended job (its JSON and bytes, as the API answered).
    /// - Throws: `ExitCode` 1 (refused: the job is gone, the token revoked), 2 (unreachable), 6 (`--timeout`).
    func run() throws -> (json: JSON, bytes: [UInt8]) {
        try Follow(client: client, path: "/api/v1/jobs/\(job)", name: "job \(job)", options: options).run(
            describe: Self.describe, state: { Text.field($0, "state") },
            ended: { JobState(rawValue: Text.field($0, "state"))?.isTerminal == true })
    }

    /// `job 12: running — migrate 40% applying schema` (an ended job: its state alone).
    static func describe(_ job: JSON) -> String {
        let ended = JobState(rawValue: job["state"]?.stringValue ?? "")?.isTerminal ?? false
        let progress = ended ? "" : Text.progress(job)
        let head = "job \(job["id"]?.intValue ?? 0): \(Text.field(job, "state"))"
        return progress.isEmpty ? head : head + " — " + progress
    }

    /// `job 12: succeeded`, or how it ended and what its last event says.
    static func outcome(_ job: JSON) -> String {
        let id = job["id"]?.intValue ?? 0
        var line = "job \(id): \(Text.field(job, "state"))"
        let last = job["events"]?.arrayValue?.last { $0["to"]?.stringValue != nil }
        let detail = Text.detail(last?["detail"])
        if Text.field(job, "state") != JobState.succeeded.rawValue, !detail.isEmpty { line += " (\(detail))" }
        if let log = job["log_url"]?.stringValue { line += "; log: \(Text.safe(log))" }
        return line
    }

    /// The rollback or diagnostic jobs the environment's failure policy started for a failed deploy.
    static func followUps(_ client: APIClient, of job: JSON) -> [String] {
        guard let id = job["id"]?.intValue, Text.field(job, "state") != JobState.succeeded.rawValue else { return [] }
        let path =
            "/api/v1/jobs"
            + query([("project", job["project"]?.stringValue), ("environment", job["environment"]?.stringValue)])
        guard case .answered(let r) = client.attempt("GET", path), r.status == 200,
            let jobs = (try? JSON.parse(r.body))?["jobs"]?.arrayValue
        else { return [] }
        return jobs.filter { $0["parent_job_id"]?.intValue == id }.reversed().map { child in
            "job \(child["id"]?.intValue ?? 0): \(Text.field(child, "kind")) of \(Text.field(child, "ref")) "
                + "started after it (now \(Text.field(child, "state"))); follow it with `draven status`"
        }
    }

    /// The command's exit for how the job ended (README: the exit codes).
    static func exit(for job: JSON) -> ExitCode {
        switch JobState(rawValue: job["state"]?.stringValue ?? "") {
        case .succeeded: .success
        case .failed: ExitCode(3)
        case .timedOut: ExitCode(4)
        default: ExitCode(5)
        }
    }
}

/// Follows one thing the API shows (a job, a plan run) by polling its `path` until it ends,
/// showing a progress line on stderr (stdout keeps the outcome, so `draven deploy … --wait --json
/// | jq` sees only the job). On a terminal the line is redrawn in place, with the time waited;
/// into a pipe or a file, one line is written each time it changes. A brief outage (no answer,
/// 429, 502–504) is retried for up to a minute, then the command exits 2.
struct Follow {
    let client: APIClient
    let path: String
    /// `job 12`, `run 3`: what the messages call it.
    let name: String
    let options: WatchOptions
    /// How long answers may fail in a row before giving up.
    static let patience: Double = 60

    /// - Parameters: `describe`: the progress line; `state`: its state's name; `ended`: whether it ended.
    /// - Returns: the ended thing (its JSON and bytes, as the API answered).
    /// - Throws: `ExitCode` 1 (refused: it is gone, the token revoked), 2 (unreachable), 6 (`--timeout`).
    func run(describe: (JSON) -> String, state: (JSON) -> String, ended: (JSON) -> Bool) throws -> (
        json: JSON, bytes: [UInt8]
    ) {
        let every = ClientDuration.seconds(options.every) ?? 1
        let limit = options.timeout.flatMap(ClientDuration.seconds)
        let start = Date()
        let line = ProgressLine()
        defer { line.finish() }
        var failingSince: Date?
        var lastState = "?"
        while true {
            var problem: String?
            switch client.attempt("GET", path) {
            case .answered(let r) where (200...299).contains(r.status):
                guard let shown = try? JSON.parse(r.body) else {
                    problem = "the API's answer is not JSON"
                    break
                }
                failingSince = nil
                lastState = state(shown)
                line.show(describe(shown), elapsed: Date().timeIntervalSince(start))
                if ended(shown) { return (shown, r.body) }
            case .answered(let r) where APIClient.isTransient(r.status):
                problem = "the API answered \(r.status)"
            case .answered(let r):
                line.finish()
                throw client.refusal(r)
            case .unreachable(let why):
                problem = why
            }
            if let problem {
                let since = failingSince ?? Date()
                if failingSince == nil {
                    failingSince = since
                    line.note("draven: \(problem); asking again")
                }
                if Date().timeIntervalSince(since) > Self.patience {
                    line.finish()
                    warn("draven: cannot reach \(client.base) for \(Int(Self.patience))s: \(problem)")
                    throw ClientExit.unreachable
                }
            }
            if let limit, Date().timeIntervalSince(start) >= limit {
                line.finish()
                warn("draven: stopped waiting after \(options.timeout ?? ""); \(name) is \(lastState) and goes on")
                throw ExitCode(6)
            }
            Thread.sleep(forTimeInterval: every)
        }
    }
}

/// The progress line on stderr: redrawn in place on a terminal (cut to its width, so it never
/// wraps), one line per change otherwise.
final class ProgressLine {
    let terminal = isatty(2) != 0
    private var last: String?
    private var drawn = false

    /// Ctrl-C stops the waiting, not the job: the line is ended and the command exits 130 (as a
    /// shell reports SIGINT); `draven cancel JOB` is what stops a job.
    init() {
        guard terminal else { return }
        signal(SIGINT) { _ in
            let text: StaticString = "\ndraven: stopped waiting; the job goes on (draven cancel JOB stops it)\n"
            _ = Glibc.write(2, text.utf8Start, text.utf8CodeUnitCount)  // no allocation in a signal handler
            _exit(130)
        }
    }

    func show(_ text: String, elapsed: Double) {
        if terminal {
            let line = "\(text) (\(Text.span(Int64(elapsed))))"
            let width = max(20, Self.columns() - 1)
            let cut = line.count > width ? String(line.prefix(width - 1)) + "…" : line
            write("\r\u{1B}[K" + cut)
            drawn = true
        } else if text != last {
            write(text + "\n")
        }
        last = text
    }

    /// A message of its own line (the progress line is redrawn after it).
    func note(_ text: String) {
        if drawn { write("\r\u{1B}[K") }
        drawn = false
        write(text + "\n")
    }

    /// Ends the line on a terminal, so what follows starts on its own.
    func finish() {
        if drawn { write("\n") }
        drawn = false
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    private static func columns() -> Int {
        var size = winsize()
        guard ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}
