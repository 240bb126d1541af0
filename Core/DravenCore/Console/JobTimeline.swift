/// The whole history of one job, in order, as its page shows it: the request, the policy's
/// decision, every vote (who, from where — `api`, `slack`, `teams`, `mattermost` — for which
/// sha, with the comment), the lock and its fencing token, each dispatch attempt (the failed
/// ones are audit records `dispatch.retry` with their errors; the last is the move to `running`
/// or `failed`), the provider's events, the latest heartbeat and progress, the runner's result
/// with its log and artifact links, and the diagnostic and rollback jobs linked both ways;
/// also what was refused about the job (a vote from someone not entitled, a stale callback).
///
/// Sources, all by the job's id on an index: `job_events` (the state machine's record of every
/// move and note), `audit` records whose subject is the job (`audit_subject`, migration 0010),
/// the job's `outbox` rows (every outbound call, its attempts and last error), the job row
/// (heartbeat, progress, links) and its parent and children. Heartbeats are not kept one by one
/// (`Heartbeat` writes no row per beat): the timeline shows the latest, with its progress.
package struct JobTimeline: Sendable {
    /// A link out of draven (a log, an artifact, the provider's run).
    package struct Link: Sendable, Equatable {
        package var title: String
        package var url: String
    }

    /// One thing that happened to the job.
    package struct Entry: Sendable {
        package enum Kind: String, Sendable {
            case requested, policy, transition, ignored, vote
            case shaChanged = "sha_changed"
            /// The lock taken, with its fencing token (the move to `dispatching`), or queued behind its holder.
            case lock
            case dispatchAttempt = "dispatch_attempt"
            case provider, heartbeat, result, diagnostic, recovery, refused
            case repeatVote = "repeat_vote"
            case notifyFailed = "notify_failed"
            case note
        }

        package var at: Int64
        package var kind: Kind
        package var actor: String
        /// For moves: the states left and entered.
        package var from: JobState?
        package var to: JobState?
        /// One line for a person to read (plain text: escape it to render).
        package var summary: String
        /// What was recorded, as recorded.
        package var detail: JSONObject
        package var links: [Link]
        /// Other jobs it names (the queue's holder, a diagnostic or rollback job).
        package var jobs: [Int64]
    }

    package var job: Job
    package var parent: Job?
    /// Diagnostic and rollback jobs started from this one, oldest first.
    package var children: [Job]
    package var entries: [Entry]
    /// Every outbound call about the job (dispatch, poll, cancel, notify), oldest first.
    package var outbound: [Outbox.Row]
    /// The environment's lock while this job holds it (fencing token, lease).
    package var lock: Locks.Lock?
    /// While queued: its place in the environment's queue (1 starts next) and the lock's holder.
    package var queuePosition: Int?
    package var queueHolder: Int64?

    /// - Throws: `.notFound` when there is no such job or the viewer may not read it (as the API).
    package static func load(_ db: Database, job id: Int64, viewer: Principal) throws -> JobTimeline {
        let job = try Job.require(db, id: id)
        try Grants.require(db, viewer, .read, job: job)
        var builder = Builder(job: job)
        for event in try JobEvent.list(db, job: id) { builder.add(event) }
        for record in try Audit.about(db, subject: "job/\(id)") { builder.add(record) }
        builder.addHeartbeat()
        var related: [Job] = []
        // Related jobs are of the same environment by construction; checked anyway.
        var readable: [Int64: Bool] = [job.environmentID: true]
        func mayRead(_ other: Job) throws -> Bool {
            if let known = readable[other.environmentID] { return known }
            let ok = try Grants.allows(
                db, person: viewer.personID, action: .read, project: other.project, environment: other.environment)
            readable[other.environmentID] = ok
            return ok
        }
        for child in try Job.children(db, of: id) {
            if try mayRead(child) { related.append(child) }
        }
        let parent = try job.parentJobID.flatMap { try Job.find(db, id: $0) }
        var position: Int?
        var holder: Int64?
        if job.state == .queued {
            position = try Job.queued(db, environment: job.environmentID).firstIndex { $0.id == id }.map { $0 + 1 }
            holder = try Locks.holder(db, environment: job.environmentID)?.jobID
        }
        let lock = try Locks.lock(db, environment: job.environmentID).flatMap { $0.jobID == id ? $0 : nil }
        return JobTimeline(
            job: job, parent: try parent.flatMap { try mayRead($0) ? $0 : nil }, children: related,
            entries: builder.sorted(), outbound: try Outbox.rows(db, job: id), lock: lock, queuePosition: position,
            queueHolder: holder)
    }
}

extension JobTimeline {
    /// Turns each recorded fact into an entry.
    struct Builder {
        let job: Job
        /// With the order they were added in each source (events before audit records at one time).
        var entries: [(rank: Int, seq: Int, entry: Entry)] = []

        init(job: Job) { self.job = job }

        mutating func append(_ rank: Int, _ entry: Entry) { entries.append((rank, entries.count, entry)) }

        func sorted() -> [Entry] {
            entries.sorted { ($0.entry.at, $0.rank, $0.seq) < ($1.entry.at, $1.rank, $1.seq) }.map(\.entry)
        }

        static func entry(
            _ at: Int64, _ kind: Entry.Kind, _ actor: String, _ summary: String, _ detail: JSONObject,
            from: JobState? = nil, to: JobState? = nil, links: [Link] = [], jobs: [Int64] = []
        ) -> Entry {
            Entry(
                at: at, kind: kind, actor: actor, from: from, to: to, summary: summary, detail: detail, links: links,
                jobs: jobs)
        }

        mutating func add(_ event: JobEvent) {
            let d = (try? JSON.parse(event.detail))?.objectValue ?? [:]
            let from = event.from.flatMap(JobState.init(rawValue:))
            let to = event.to.flatMap(JobState.init(rawValue:))
            let at = event.at
            let actor = event.actor
            switch event.event {
            case "created":
                let reason = d["reason"]?.stringValue.flatMap { $0.isEmpty ? nil : " — “\($0)”" } ?? ""
                let parent = d["parent_job_id"]?.intValue
                let what = parent.map { " (from job \($0))" } ?? ""
                append(
                    0,
                    Self.entry(
                        at, .requested, actor,
                        "\(actor) asked to \(job.kind.rawValue) \(d["ref"]?.stringValue ?? job.ref) to "
                            + "\(job.project)/\(job.environment)\(what)\(reason)", d, to: .pending,
                        jobs: parent.map { [$0] } ?? []))
            case "transition":
                if from == .pending, let to { append(0, policy(at, actor, to: to, d)) }
                append(0, transition(at, actor, from: from, to: to, d))
            case "ignored":
                let said = "\(actor) reported \(event.to ?? "?") while the job was \(event.from ?? "?"): ignored"
                append(0, Self.entry(at, .ignored, actor, said, d, from: from, to: to))
            case "vote":
                append(0, vote(at, actor, d))
            case "sha_changed":
                let old = d["from"]?.stringValue.map { String($0.prefix(12)) } ?? "none"
                let new = d["to"]?.stringValue.map { String($0.prefix(12)) } ?? "none"
                append(
                    0,
                    Self.entry(
                        at, .shaChanged, actor, "the ref moved from \(old) to \(new): earlier approvals stop counting",
                        d))
            case "provider":
                append(0, provider(at, actor, d))
            case "diagnostic":
                let child = d["diagnostic_job_id"]?.intValue
                let result = d["result"]?.stringValue ?? "ended"
                append(
                    0,
                    Self.entry(
                        at, .diagnostic, actor, "diagnostic job \(child.map(String.init) ?? "?") \(result)", d,
                        links: Self.links(d, ["log_url": "diagnostic log"]), jobs: child.map { [$0] } ?? []))
            case "recovery":
                let said = d.entries.map { "\($0.key): \($0.value.stringValue ?? $0.value.serialized())" }
                append(0, Self.entry(at, .recovery, actor, said.joined(separator: "; "), d))
            default:
                append(0, Self.entry(at, .note, actor, event.event, d))
            }
        }

        /// The policy's decision, told with the job's first move out of `pending`.
        func policy(_ at: Int64, _ actor: String, to: JobState, _ d: JSONObject) -> Entry {
            let version = "policy v\(job.policyVersion) of \(job.project)/\(job.environment)"
            let said: String
            switch to {
            case .awaitingApproval:
                let n = d["approvals_required"]?.intValue ?? 0
                let approvals = "\(n) approval\(n == 1 ? "" : "s")"
                said = "\(version): \(job.ref) allowed; \(approvals) needed before the lock is taken"
            case .dispatching, .queued: said = "\(version): \(job.ref) allowed; no approvals needed"
            default: said = "\(version): \(job.ref) allowed"
            }
            return Self.entry(at, .policy, actor, said, [:])
        }

        func transition(_ at: Int64, _ actor: String, from: JobState?, to: JobState?, _ d: JSONObject) -> Entry {
            let move = "\(from?.rawValue ?? "?") → \(to?.rawValue ?? "?")"
            var links = Self.links(d, ["log_url": "log", "run_url": "run"])
            for (n, url) in (d["artifact_urls"]?.arrayValue ?? []).compactMap(\.stringValue).enumerated() {
                links.append(Link(title: "artifact \(n + 1)", url: url))
            }
            if to == .dispatching, let token = d["fencing_token"]?.intValue {
                return Self.entry(
                    at, .lock, actor, "took the lock with fencing token \(token); dispatching", d, from: from, to: to)
            }
            if to == .queued {
                let behind = d["behind_job"]?.intValue
                let said = behind.map { "queued behind job \($0), which holds the lock" } ?? "queued for the lock"
                return Self.entry(at, .lock, actor, said, d, from: from, to: to, jobs: behind.map { [$0] } ?? [])
            }
            if let result = d["result"]?.stringValue, to != .running {
                let release = d["release_id"]?.stringValue.map { ", release \($0)" } ?? ""
                return Self.entry(
                    at, .result, actor, "the runner reported \(result)\(release)", d, from: from, to: to, links: links)
            }
            var said = move
            if let by = d["by"]?.stringValue { said += " by \(by)" }
            if let reason = d["reason"]?.stringValue, !reason.isEmpty { said += ": \(reason)" }
            if let comment = d["comment"]?.stringValue, !comment.isEmpty { said += " — “\(comment)”" }
            if to == .running, let run = d["run_id"]?.stringValue { said += " (provider run \(run))" }
            return Self.entry(at, .transition, actor, said, d, from: from, to: to, links: links)
        }

        func vote(_ at: Int64, _ actor: String, _ d: JSONObject) -> Entry {
            let decision = d["decision"]?.stringValue == "reject" ? "rejected" : "approved"
            let via = d["via"]?.stringValue ?? "api"
            let sha = d["sha"]?.stringValue.map { " for \($0.prefix(12))" } ?? ""
            let comment = d["comment"]?.stringValue.flatMap { $0.isEmpty ? nil : " — “\($0)”" } ?? ""
            return Self.entry(at, .vote, actor, "\(actor) \(decision) via \(via)\(sha)\(comment)", d)
        }

        func provider(_ at: Int64, _ actor: String, _ d: JSONObject) -> Entry {
            var parts: [String] = []
            if let name = d["event"]?.stringValue { parts.append(name) }
            for key in ["status", "conclusion", "state"] {
                if let value = d[key]?.stringValue { parts.append(value) }
            }
            for key in ["poll", "cancel", "applied"] {
                if let value = d[key]?.stringValue { parts.append(value) }
            }
            let said = parts.isEmpty ? "the provider said something" : parts.joined(separator: " · ")
            return Self.entry(at, .provider, actor, said, d, links: Self.links(d, ["url": "run"]))
        }

        /// What the audit trail adds: the records the job's events do not mirror (moves and votes
        /// are both; these are not).
        mutating func add(_ record: Audit.Record) {
            let action = record.action
            guard !action.hasPrefix("job."), action != "approval.approve", action != "approval.reject" else { return }
            let d = (try? JSON.parse(record.detail))?.objectValue ?? [:]
            let actor = record.actor
            let entry: Entry
            switch action {
            case "dispatch.retry":
                let attempt = d["attempt"]?.intValue.map(String.init) ?? "?"
                let delay = d["in_seconds"]?.intValue.map { "; retried in \($0) s" } ?? ""
                entry = Self.entry(
                    record.at, .dispatchAttempt, actor,
                    "dispatch attempt \(attempt) failed: \(d["error"]?.stringValue ?? "no answer")\(delay)", d)
            case "approval.repeat":
                let decision = d["decision"]?.stringValue ?? "vote"
                entry = Self.entry(
                    record.at, .repeatVote, actor, "\(actor) voted \(decision) again; it was already counted", d)
            case "notify.failed":
                entry = Self.entry(
                    record.at, .notifyFailed, actor, "a notification failed: \(d["error"]?.stringValue ?? "")", d)
            case _ where record.outcome == "refused":
                let what = action.hasSuffix(".refused") ? String(action.dropLast(".refused".count)) : action
                entry = Self.entry(
                    record.at, .refused, actor,
                    "\(actor)'s \(what) request was refused: \(d["detail"]?.stringValue ?? "")", d)
            default:
                entry = Self.entry(record.at, .note, actor, action, d)
            }
            append(1, entry)
        }

        /// The latest heartbeat (only it is kept), with the progress it reported.
        mutating func addHeartbeat() {
            guard let at = job.heartbeatAt else { return }
            let p = job.progress.flatMap { try? JSON.parse($0) }?.objectValue ?? [:]
            var parts: [String] = []
            if let step = p["step"]?.stringValue { parts.append(step) }
            if let percent = p["percent"]?.intValue { parts.append("\(percent) %") }
            if let message = p["message"]?.stringValue { parts.append(message) }
            let said = "latest heartbeat" + (parts.isEmpty ? "" : ": " + parts.joined(separator: " · "))
            append(2, Self.entry(at, .heartbeat, "runner", said, p))
        }

        /// The links `keys` (detail key → title) name, when they are http(s) URLs.
        static func links(_ d: JSONObject, _ keys: KeyValuePairs<String, String>) -> [Link] {
            keys.compactMap { pair in
                guard let url = d[pair.key]?.stringValue, url.hasPrefix("https://") || url.hasPrefix("http://") else {
                    return nil
                }
                return Link(title: pair.value, url: url)
            }
        }
    }
}
