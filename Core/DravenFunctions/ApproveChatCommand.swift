package import DravenCore

/// One verified chat request: `deploy PROJECT ENV REF [reason]`, `plan run PLAN [key=value…] [-- reason]`,
/// `approve JOB [comment]`, `reject JOB [comment]` or `status JOB`, from a platform user. The user must be linked to a
/// draven person in the configuration (`[people.X] chat = { slack = "U0123" }`); a vote then goes
/// through `Approvals.vote` exactly as one from the API, and a deploy through `Trigger.deploy`
/// exactly as `POST /api/v1/deploys` (the person's `deploy` grant, the environment's policy, the
/// lock or the queue; its audit records say `via` the platform), and a plan run through
/// `PlanRunRoutes.start` exactly as `POST /api/v1/plans/{id}/runs`. Refusals become a reply the user
/// can read, and are audited under the chat user; nothing else changes.
struct ChatCommand {
    struct Reply {
        var text: String
        /// Shown to the channel (a vote) rather than only to the user.
        var `public`: Bool
    }

    var platform: String
    var userID: String
    var alternateUserID: String?
    var text: String
    var replay: (source: String, key: String)?
    /// Mattermost's `trigger_id` (one per slash command): what a deploy from Mattermost is
    /// remembered by, its scheme having no signature to remember.
    var triggerID: String?

    init(platform: String, userID: String, text: String) {
        self.platform = platform
        self.userID = userID
        self.text = text
    }

    static let usage =
        "draven: use approve JOB [comment], reject JOB [comment], status JOB, deploy PROJECT ENV REF [reason] "
        + "or plan run PLAN [key=value…] [-- reason] (e.g. /draven approve 12, /draven deploy shop prod v1.2.0, "
        + "/draven plan run release ref=v1.2.0)"
    static let deployUsage = "name what to deploy: deploy PROJECT ENV REF [reason] (e.g. deploy shop prod v1.2.0)"
    static let planUsage = "name the plan: plan run PLAN [key=value…] [-- reason] (e.g. plan run release ref=v1.2.0)"
    /// At most this many current steps are named in a reply (a plan may have 100).
    static let namedSteps = 5

    /// - Throws: only `.badSignature` (a replay) and store errors; other refusals are replies.
    func run(_ request: Request, _ context: Context) throws -> Reply {
        context.caller = "\(platform):\(userID)"
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard let verb = words.first.map({ $0.lowercased() }),
            ["approve", "reject", "status", "deploy", "plan"].contains(verb)
        else {
            return Reply(text: Self.usage, public: false)
        }
        do {
            let db = try context.db()
            guard let person = try person(db) else {
                throw DravenError.unknownChatUser(platform: platform, userID: userID)
            }
            context.caller = person.handle
            if verb == "deploy" { return try deploy(words.map(String.init), as: person, context) }
            if verb == "plan" { return try planRun(words.map(String.init), as: person, context) }
            guard words.count > 1, let id = Int64(words[1].drop(while: { $0 == "#" })), id > 0 else {
                throw DravenError.invalidField(pointer: "text", reason: "name the job by its number: \(verb) 12")
            }
            context.subject = "job/\(id)"
            if verb == "status" {
                let job = try Job.require(db, id: id)
                let reader = Principal(personID: person.id, handle: person.handle, tokenID: 0)
                try Grants.require(db, reader, .read, job: job)
                let tally = try Approvals.list(db, job: job)
                let counts = "\(tally["approvals"]?.intValue ?? 0) of \(tally["required"]?.intValue ?? 0)"
                return Reply(
                    text: "draven: \(describe(job)) is \(job.state.rawValue)"
                        + (job.state == .awaitingApproval ? " with \(counts) approvals" : ""),
                    public: false)
            }
            let comment = words.dropFirst(2).joined(separator: " ")
            let voter = Approvals.Voter(
                personID: person.id, handle: person.handle, via: platform, chatUser: userID,
                remote: request.remoteAddress)
            let decision: Approvals.Decision = verb == "approve" ? .approve : .reject
            let outcome = try context.db().immediate { tx in
                try Approvals.vote(
                    tx, job: id, voter: voter, decision: decision, comment: String(comment.prefix(1000)),
                    replay: replay, now: context.now)
            }
            let job = try Job.require(db, id: id)
            guard outcome.counted else {
                return Reply(
                    text:
                        "draven: you already voted on \(describe(job)) (\(outcome.approvals) of \(outcome.required) "
                        + "approvals)",
                    public: false)
            }
            let result =
                switch outcome.state {
                case .rejected: "— it will not be deployed"
                case .dispatching: "— approved: deploying"
                case .queued: "— approved: queued until the environment is free"
                default: "(\(outcome.approvals) of \(outcome.required) approvals)"
                }
            return Reply(
                text:
                    "draven: \(person.handle) \(decision == .approve ? "approved" : "rejected") \(describe(job)) "
                    + "\(result)",
                public: true)
        } catch let error as DravenError {
            if case .badSignature = error { throw error }
            let problem = Problem(error)
            context.auditRefusal(problem)
            return Reply(text: "draven: " + problem.detail, public: false)
        }
    }

    /// `deploy PROJECT ENV REF [reason]` as `person`: the request `POST /api/v1/deploys` would get,
    /// through the same code. Remembered by the request's replay key (Slack's signature, Teams'
    /// body, Mattermost's trigger id) in the job's transaction, so a resent request deploys nothing.
    /// The reply is shown to the channel, as a vote's is.
    /// - Throws: what `Trigger.deploy` throws; `.invalidField` when the words do not name a deploy.
    func deploy(_ words: [String], as person: (id: Int64, handle: String), _ context: Context) throws -> Reply {
        guard words.count >= 4 else { throw DravenError.invalidField(pointer: "text", reason: Self.deployUsage) }
        var body: JSONObject = [
            "project": .string(words[1]), "environment": .string(words[2]), "ref": .string(words[3]),
        ]
        if words.count > 4 { body["reason"] = .string(words.dropFirst(4).joined(separator: " ")) }
        let input = try DeployRequest(.object(body))
        let principal = Principal(personID: person.id, handle: person.handle, tokenID: 0)
        let key =
            replay
            ?? triggerID.map { (source: platform, key: "trigger:" + Sodium.sha256Hex(Array($0.utf8))) }
        let db = try context.db()
        db.auditVia = platform  // the job's audit records say where it was asked for, as the console's do
        defer { db.auditVia = context.via }
        let (job, _) = try Trigger.deploy(input, by: principal, idempotencyKey: { nil }, replay: key, context)
        let result: String
        switch job.state {
        case .awaitingApproval:
            let required = try Approvals.list(db, job: job)["required"]?.intValue ?? 0
            result = "— it needs \(required) approval\(required == 1 ? "" : "s"): approve \(job.id)"
        case .dispatching: result = "— deploying"
        case .queued: result = "— queued until the environment is free"
        default: result = "— it is \(job.state.rawValue)"
        }
        return Reply(text: "draven: \(person.handle) asked for \(describe(job)) \(result)", public: true)
    }

    /// `plan run PLAN [key=value…] [-- reason]` as `person`: the run `POST /api/v1/plans/{id}/runs`
    /// would start, through the same code (`PlanRunRoutes.start`), remembered by the request's
    /// replay key as a deploy is. The reply is shown to the channel.
    /// - Throws: what `PlanRunRoutes.start` throws; `.invalidField` when the words do not name a run.
    func planRun(_ words: [String], as person: (id: Int64, handle: String), _ context: Context) throws -> Reply {
        guard words.count >= 3, words[1].lowercased() == "run" else {
            throw DravenError.invalidField(pointer: "text", reason: Self.planUsage)
        }
        let plan = words[2]
        context.subject = "plan/\(plan.capped(128).text)"
        let rest = words.dropFirst(3)
        let cut = rest.firstIndex(of: "--") ?? rest.endIndex
        var inputs = JSONObject()
        for word in rest[..<cut] {
            guard let eq = word.firstIndex(of: "="), eq != word.startIndex else {
                throw DravenError.invalidField(pointer: "text", reason: "inputs are key=value: " + Self.planUsage)
            }
            inputs[String(word[..<eq])] = .string(String(word[word.index(after: eq)...]))
        }
        let reason = String(rest[cut...].dropFirst().joined(separator: " ").prefix(1000))
        let principal = Principal(personID: person.id, handle: person.handle, tokenID: 0)
        let key =
            replay
            ?? triggerID.map { (source: platform, key: "trigger:" + Sodium.sha256Hex(Array($0.utf8))) }
        let db = try context.db()
        db.auditVia = platform
        defer { db.auditVia = context.via }
        let (id, _) = try PlanRunRoutes.start(
            plan, inputs: inputs, reason: reason, by: principal, idempotencyKey: { nil }, replay: key, context)
        let run = try PlanRuns.require(db, id: id)
        var result = "— it is \(run.status.rawValue)"
        let current = run.steps.filter { $0.status == .running || $0.status == .retrying }.map(\.id)
        if run.status == .running, !current.isEmpty {
            let named = current.prefix(Self.namedSteps).joined(separator: ", ")
            let more = current.count > Self.namedSteps ? " and \(current.count - Self.namedSteps) more" : ""
            result = "— running \(named)\(more)"
        }
        return Reply(
            text: "draven: \(person.handle) started run \(id) of plan \(run.plan.id) v\(run.plan.version) \(result)",
            public: true)
    }

    func person(_ db: Database) throws -> (id: Int64, handle: String)? {
        for id in [userID] + (alternateUserID.map { [$0] } ?? []) {
            if let found = try People.linked(db, platform: platform, userID: id) { return found }
        }
        return nil
    }

    func describe(_ job: Job) -> String { "deploy #\(job.id) of \(job.project) \(job.ref) to \(job.environment)" }

    /// A Teams message as text: `<at>draven</at> approve 12` → `approve 12` (mentions of the bot
    /// and other markup removed, entities decoded).
    static func plainText(_ html: String) -> String {
        var out = ""
        var rest = Substring(html)
        while let open = rest.firstIndex(of: "<") {
            out += rest[..<open]
            let tag = rest[open...]
            if tag.lowercased().hasPrefix("<at>"), let end = tag.firstRange(of: "</at>") {
                rest = tag[end.upperBound...]  // the bot's own mention
            } else if let close = tag.firstIndex(of: ">") {
                rest = tag[tag.index(after: close)...]
            } else {
                rest = ""
            }
        }
        out += rest
        for (entity, char) in [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&amp;", "&")] {
            out = out.replacing(entity, with: char)
        }
        return out.trimmingSpaces()
    }
}
