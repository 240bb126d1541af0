/// A validated configuration: projects, environments and their policies, integrations, people,
/// groups and grants. `draven apply -f draven.toml` parses the file into a JSON tree (so TOML,
/// JSON or YAML front ends share one validator) and `Config.validate` checks it here.
/// `infra/draven.example.toml` documents every key.
package struct Config: Sendable {
    package struct Person: Sendable {
        package var handle, name, email: String
        package var chat: [(platform: String, userID: String)]
    }
    package struct Group: Sendable {
        package var name: String
        package var members: [String]
    }
    package struct Grant: Sendable {
        package var person: String?
        package var group: String?
        package var project: String
        package var environments: [String]
        package var actions: [Action]
    }
    package struct Environment: Sendable {
        package var name: String
        package var refs: [Policy.RefRule]
        package var approvals: Int64
        package var approverGroups: [String]
        package var selfApproval: Bool
        package var approvalTTL: Int64
        package var lock: Policy.LockMode
        package var lease: Int64
        package var onFailure: [FailureAction]
        /// The policy as written, stored for reference and hashed into the policy version.
        package var document: JSON
    }
    package struct Integration: Sendable {
        package var provider: Provider
        package var repo: String
        package var method: String
        package var document: JSON
    }
    package struct Project: Sendable {
        package var name: String
        package var description: String
        package var integration: Integration?
        package var environments: [Environment]
        /// Where job outcomes are announced: `slack_webhook_secret`, `teams_webhook_secret`
        /// (secrets holding the incoming-webhook URLs), `email` (addresses); and where approval
        /// requests are posted: `slack_channel` (with the bot token) and the Teams webhook.
        package var notify: JSONObject = [:]
    }
    /// The SMTP server for email notifications (`[smtp]`: url, from, username, password_secret).
    package var smtp: JSONObject?
    /// Chat-ops (`[chatops.slack]`, `[chatops.teams]`, `[chatops.mattermost]`): the names of the
    /// secrets that verify each platform's requests, and Slack's bot token for approval requests.
    package var chatops: JSONObject?
    /// The event stream (`[events]`: `source`, `[[events.subscriptions]]`), checked by `Subscriptions`.
    package var events: JSONObject?

    package var tokenHeader: String?
    /// `[logs]`: archived job logs' per-job cap (bytes) and retention (seconds); nil: the defaults
    /// (`JobLogs.defaultMaxBytes`, `JobLogs.defaultRetention`).
    package var logMaxJobBytes: Int64?
    package var logRetention: Int64?
    /// `[console] proxy_user_header` and `trusted_proxies`: sign-in by an authenticating proxy's header.
    package var proxyUserHeader: String?
    package var trustedProxies: [String] = []
    package var people: [Person] = []
    package var groups: [Group] = []
    package var grants: [Grant] = []
    package var projects: [Project] = []
    /// `[[plans]]`: deploy plans that `draven apply` applies after the configuration, in the same
    /// transaction (README, "Deploy plans in the configuration").
    package var plans: [PlanEntry] = []

    /// One `[[plans]]` entry: `file = "plans/x.json"` (relative to the configuration file), or
    /// the plan's document itself, inline.
    package struct PlanEntry: Sendable {
        /// `plans[0]`, for problems.
        package var key: String
        package var file: String?
        /// The inline document, read by `Plan.parse` (its shape is checked by `validate`).
        package var document: JSON?
    }

    static let chatPlatforms: Set<String> = ["slack", "teams", "mattermost"]

    /// Validates a parsed configuration file.
    /// - Throws: `ConfigError` listing every problem, each with its key path.
    package static func validate(_ root: JSON, file: String) throws(ConfigError) -> Config {
        var problems: [ConfigError.Problem] = []
        guard let top = root.objectValue else {
            throw ConfigError(file: file, problems: [.init(key: "", reason: "must be a table")])
        }
        var config = Config()
        var reader = TableReader(top, path: "")

        if var api = reader.table("api", &problems).map({ TableReader($0, path: "api") }) {
            if let header = api.string("token_header", &problems) {
                if isHeaderName(header) {
                    config.tokenHeader = header
                } else {
                    problems.append(
                        .init(key: "api.token_header", reason: "must be an HTTP header name such as X-Token-XPipe"))
                }
            }
            api.finish(&problems)
        }

        if var logs = reader.table("logs", &problems).map({ TableReader($0, path: "logs") }) {
            // At least one chunk's worth; at most 1 GiB (a log is served whole by one process).
            config.logMaxJobBytes = logs.size("max_job_bytes", &problems, range: Int64(JobLogs.chunkLimit)...(1 << 30))
            if let retention = logs.duration("retention", &problems) {
                if retention >= 3600 {
                    config.logRetention = retention
                } else {
                    problems.append(.init(key: "logs.retention", reason: "must be at least an hour (\"1h\", \"90d\")"))
                }
            }
            logs.finish(&problems)
        }

        if var console = reader.table("console", &problems).map({ TableReader($0, path: "console") }) {
            let header = console.string("proxy_user_header", &problems)
            let proxies = console.strings("trusted_proxies", &problems) ?? []
            if let header, !isHeaderName(header) {
                problems.append(
                    .init(
                        key: "console.proxy_user_header", reason: "must be an HTTP header name such as X-Remote-User"
                    ))
            } else if header != nil && proxies.isEmpty {
                problems.append(
                    .init(
                        key: "console.trusted_proxies",
                        reason: "name the proxy's addresses (REMOTE_ADDR) whose proxy_user_header is believed"))
            } else {
                config.proxyUserHeader = header
                config.trustedProxies = proxies
            }
            console.finish(&problems)
        }

        for (handle, value) in reader.table("people", &problems)?.entries ?? [] {
            let path = reader.key("people") + "." + handle
            guard isName(handle) else {
                problems.append(.init(key: path, reason: "a handle may contain only letters, digits, '.', '_' and '-'"))
                continue
            }
            guard let table = value.objectValue else {
                problems.append(.init(key: path, reason: "must be a table"))
                continue
            }
            var r = TableReader(table, path: path)
            var person = Person(
                handle: handle, name: r.string("name", &problems) ?? handle, email: r.string("email", &problems) ?? "",
                chat: [])
            for (platform, id) in r.table("chat", &problems)?.entries ?? [] {
                if !chatPlatforms.contains(platform) {
                    problems.append(
                        .init(key: path + ".chat." + platform, reason: "must be slack, teams or mattermost"))
                } else if let id = id.stringValue, !id.isEmpty {
                    person.chat.append((platform, id))
                } else {
                    problems.append(
                        .init(key: path + ".chat." + platform, reason: "must be the user's id on that platform"))
                }
            }
            r.finish(&problems)
            config.people.append(person)
        }
        let handles = Set(config.people.map(\.handle))

        for (name, value) in reader.table("groups", &problems)?.entries ?? [] {
            let path = "groups." + name
            guard isName(name) else {
                problems.append(
                    .init(key: path, reason: "a group name may contain only letters, digits, '.', '_' and '-'"))
                continue
            }
            guard let members = value.arrayValue?.compactMap(\.stringValue), members.count == value.arrayValue?.count
            else {
                problems.append(.init(key: path, reason: "must be an array of people's handles"))
                continue
            }
            for m in members where !handles.contains(m) {
                problems.append(.init(key: path, reason: "names \"\(m)\", who is not in [people]"))
            }
            config.groups.append(Group(name: name, members: members))
        }
        let groupNames = Set(config.groups.map(\.name))

        if var smtp = reader.table("smtp", &problems).map({ TableReader($0, path: "smtp") }) {
            if let url = smtp.string("url", &problems, required: true),
                !(url.hasPrefix("smtp://") || url.hasPrefix("smtps://"))
            {
                problems.append(.init(key: "smtp.url", reason: "must be smtp://host:port or smtps://host:port"))
            }
            _ = smtp.string("from", &problems, required: true)
            _ = smtp.string("username", &problems)
            _ = smtp.string("password_secret", &problems)
            _ = smtp.bool("starttls", &problems)
            smtp.finish(&problems)
            config.smtp = smtp.object
        }

        if let chatops = reader.table("chatops", &problems) {
            config.chatops = Self.validateChatops(chatops, &problems)
        }

        if let events = reader.table("events", &problems) {
            config.events = Subscriptions.validate(events, &problems)
        }

        if let projects = reader.table("projects", &problems) {
            for (name, value) in projects.entries {
                let path = "projects." + name
                guard isName(name) else {
                    problems.append(
                        .init(key: path, reason: "a project name may contain only letters, digits, '.', '_' and '-'"))
                    continue
                }
                guard let table = value.objectValue else {
                    problems.append(.init(key: path, reason: "must be a table"))
                    continue
                }
                if let project = Project.validate(
                    name: name, table, path: path, groups: groupNames, problems: &problems)
                {
                    config.projects.append(project)
                }
            }
        }

        let botToken = config.chatops?["slack"]?["bot_token_secret"] != nil
        for project in config.projects where project.notify["slack_channel"] != nil && !botToken {
            problems.append(
                .init(
                    key: "projects.\(project.name).notify.slack_channel",
                    reason: "needs [chatops.slack] bot_token_secret (approval requests are posted with the bot token)"))
        }

        if let grants = reader.value("grants") {
            if let items = grants.arrayValue {
                for (i, item) in items.enumerated() {
                    let path = "grants[\(i)]"
                    guard let table = item.objectValue else {
                        problems.append(.init(key: path, reason: "must be a table"))
                        continue
                    }
                    if let grant = Grant.validate(
                        table, path: path, config: config, people: handles, groups: groupNames, problems: &problems)
                    {
                        config.grants.append(grant)
                    }
                }
            } else {
                problems.append(.init(key: "grants", reason: "must be an array of tables ([[grants]])"))
            }
        }
        config.plans = validatePlans(reader.value("plans"), &problems)
        reader.finish(&problems)
        guard problems.isEmpty else { throw ConfigError(file: file, problems: problems) }
        return config
    }

    /// `[[plans]]`: each entry a `file` alone, or an inline plan checked as `Plan.parse` checks a
    /// document (a problem's key is `plans[N]` and the JSON pointer in the plan: `plans[0]/steps/1/id`).
    /// What the store must hold is checked when the plan is applied.
    static func validatePlans(_ value: JSON?, _ problems: inout [ConfigError.Problem]) -> [PlanEntry] {
        guard let value else { return [] }
        guard let items = value.arrayValue else {
            problems.append(.init(key: "plans", reason: "must be an array of tables ([[plans]])"))
            return []
        }
        var entries: [PlanEntry] = []
        for (i, item) in items.enumerated() {
            let key = "plans[\(i)]"
            guard let table = item.objectValue else {
                problems.append(.init(key: key, reason: "must be a table"))
                continue
            }
            if let file = table["file"] {
                guard table.count == 1, let path = file.stringValue, !path.isEmpty else {
                    let why = table.count == 1 ? "must be a non-empty string" : "a file entry has only `file`"
                    problems.append(.init(key: key + ".file", reason: why))
                    continue
                }
                entries.append(PlanEntry(key: key, file: path))
                continue
            }
            do {
                _ = try Plan.parse(item)
                entries.append(PlanEntry(key: key, document: item))
            } catch DravenError.invalidField(let pointer, let reason) {
                problems.append(.init(key: key + pointer, reason: reason))
            } catch {
                problems.append(.init(key: key, reason: "\(error)"))
            }
        }
        return entries
    }

    /// `[chatops]`: each platform's table names the secrets that verify its requests.
    static func validateChatops(_ table: JSONObject, _ problems: inout [ConfigError.Problem]) -> JSONObject {
        var c = TableReader(table, path: "chatops")
        if let slack = c.table("slack", &problems) {
            var r = TableReader(slack, path: "chatops.slack")
            _ = r.string("signing_secret", &problems, required: true)
            _ = r.string("bot_token_secret", &problems)
            if let url = r.string("api_url", &problems), !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                problems.append(
                    .init(key: "chatops.slack.api_url", reason: "must be an http(s) URL such as https://slack.com/api"))
            }
            r.finish(&problems)
        }
        if let teams = c.table("teams", &problems) {
            var r = TableReader(teams, path: "chatops.teams")
            _ = r.string("security_token_secret", &problems, required: true)
            r.finish(&problems)
        }
        if let mattermost = c.table("mattermost", &problems) {
            var r = TableReader(mattermost, path: "chatops.mattermost")
            _ = r.string("token_secret", &problems, required: true)
            r.finish(&problems)
        }
        c.finish(&problems)
        return table
    }

    static func isName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy { c in
                (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 45 || c == 46
                    || c == 95
            }
    }

    static func isHeaderName(_ s: String) -> Bool {
        !s.isEmpty
            && s.utf8.allSatisfy { c in
                (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 45
            }
    }
}

extension Config.Project {
    static func validate(
        name: String, _ table: JSONObject, path: String, groups: Set<String>,
        problems: inout [ConfigError.Problem]
    ) -> Config.Project? {
        var r = TableReader(table, path: path)
        var project = Config.Project(
            name: name, description: r.string("description", &problems) ?? "", integration: nil, environments: [])
        let envs = r.table("environments", &problems) ?? [:]
        if envs.count == 0 {
            problems.append(.init(key: path + ".environments", reason: "declare at least one environment"))
        }
        for (envName, value) in envs.entries {
            let envPath = path + ".environments." + envName
            guard Config.isName(envName) else {
                problems.append(
                    .init(
                        key: envPath, reason: "an environment name may contain only letters, digits, '.', '_' and '-'"))
                continue
            }
            guard let envTable = value.objectValue else {
                problems.append(.init(key: envPath, reason: "must be a table"))
                continue
            }
            if let env = Config.Environment.validate(
                name: envName, envTable, path: envPath, groups: groups, problems: &problems)
            {
                project.environments.append(env)
            }
        }
        if let notify = r.table("notify", &problems) {
            var n = TableReader(notify, path: path + ".notify")
            _ = n.string("slack_webhook_secret", &problems)
            _ = n.string("teams_webhook_secret", &problems)
            _ = n.string("slack_channel", &problems)
            for address in n.strings("email", &problems) ?? []
            where !address.contains("@") || address.contains(" ") || address.contains("\r") || address.contains("\n") {
                problems.append(.init(key: n.key("email"), reason: "\"\(address)\" is not an email address"))
            }
            n.finish(&problems)
            project.notify = notify
        }
        if let integration = r.table("integration", &problems) {
            project.integration = Config.Integration.validate(
                integration, path: path + ".integration",
                environments: project.environments.map(\.name), problems: &problems)
        }
        r.finish(&problems)
        return project
    }
}

extension Config.Environment {
    static func validate(
        name: String, _ table: JSONObject, path: String, groups: Set<String>,
        problems: inout [ConfigError.Problem]
    ) -> Config.Environment? {
        var r = TableReader(table, path: path)
        var refs: [Policy.RefRule] = []
        let before = problems.count
        if let rules = r.strings("refs", &problems) {
            for rule in rules {
                let parts = rule.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let kind = RefKind(rawValue: String(parts[0])), !parts[1].isEmpty else {
                    problems.append(
                        .init(
                            key: r.key("refs"),
                            reason: "\"\(rule)\" must be KIND:GLOB with KIND branch, tag or sha (e.g. \"tag:v*\")"))
                    continue
                }
                refs.append(.init(kind: kind, pattern: String(parts[1])))
            }
        } else if r.value("refs") == nil {
            problems.append(
                .init(
                    key: r.key("refs"),
                    reason: "is required: list the refs that may deploy, e.g. [\"tag:v*\"] or [\"branch:develop\"]"))
        }
        let approvals = r.int("approvals", &problems, range: 0...20) ?? 0
        let approverGroups = r.strings("approver_groups", &problems) ?? []
        for g in approverGroups where !groups.contains(g) {
            problems.append(.init(key: r.key("approver_groups"), reason: "names \"\(g)\", which is not in [groups]"))
        }
        if approvals > 0 && approverGroups.isEmpty {
            problems.append(.init(key: r.key("approver_groups"), reason: "is required when approvals > 0"))
        }
        let selfApproval = r.bool("self_approval", &problems) ?? false
        let ttl = r.duration("approval_ttl", &problems) ?? 86400
        var lock = Policy.LockMode.queue
        if let mode = r.string("lock", &problems) {
            if let m = Policy.LockMode(rawValue: mode) {
                lock = m
            } else {
                problems.append(.init(key: r.key("lock"), reason: "must be \"queue\" or \"reject\", not \"\(mode)\""))
            }
        }
        let lease = r.duration("lease", &problems) ?? 600
        let onFailure = r.strings("on_failure", &problems) ?? []
        _ = r.bool("rollback_approvals", &problems)  // read from the stored policy document (Policy.load)
        for f in onFailure where FailureAction(rawValue: f) == nil {
            problems.append(.init(key: r.key("on_failure"), reason: "\"\(f)\" must be \"rollback\" or \"diagnostic\""))
        }
        r.finish(&problems)
        guard problems.count == before else { return nil }
        return Config.Environment(
            name: name, refs: refs, approvals: approvals, approverGroups: approverGroups, selfApproval: selfApproval,
            approvalTTL: ttl, lock: lock, lease: lease,
            onFailure: onFailure.compactMap(FailureAction.init(rawValue:)),
            document: .object(table))
    }
}

extension Config.Integration {
    static func validate(
        _ table: JSONObject, path: String, environments: [String],
        problems: inout [ConfigError.Problem]
    ) -> Config.Integration? {
        var r = TableReader(table, path: path)
        let before = problems.count
        let provider = r.string("provider", &problems, required: true)
        let repo = r.string("repo", &problems, required: true)
        let method = r.string("method", &problems, required: true)
        let kind = provider.flatMap(Provider.init(rawValue:))
        if let provider, let method {
            if let methods = kind?.ci.methods {
                if !methods.contains(method) {
                    problems.append(
                        .init(
                            key: r.key("method"),
                            reason:
                                "\(provider) supports \(methods.sorted().joined(separator: ", ")), not \"\(method)\""))
                }
            } else {
                let names = Provider.allCases.map(\.rawValue)
                let list = names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
                problems.append(.init(key: r.key("provider"), reason: "must be \(list), not \"\(provider)\""))
            }
        }
        // Secrets are named here and kept in the secrets store, never in this file.
        // `api_token_secret`: GitLab only, a token that may read and cancel pipelines when `token_secret` is a trigger
        // token.
        for name in ["token_secret", "webhook_secret", "runner_secret", "api_token_secret"] {
            _ = r.string(name, &problems)
        }
        // `signing_secret`: GitLab only, the signing token (`whsec_…`) its webhooks are signed with; then required.
        if r.string("signing_secret", &problems) != nil, let provider, kind != .gitlab {
            problems.append(
                .init(
                    key: r.key("signing_secret"),
                    reason: "is for GitLab's signed webhooks; \(provider) signs with webhook_secret"))
        }
        _ = r.string("api_url", &problems)
        _ = r.string("project_id", &problems)
        var document = table
        if let timeout = r.duration("timeout", &problems) {
            if timeout > 120 { problems.append(.init(key: r.key("timeout"), reason: "must be at most 120s")) }
            document["timeout"] = .int(timeout)  // stored as seconds
        }
        if let pipelines = r.table("pipelines", &problems) {
            for (env, value) in pipelines.entries where value.stringValue?.isEmpty ?? true {
                problems.append(
                    .init(
                        key: r.key("pipelines") + "." + env,
                        reason: "must name a pipeline (workflow file, or custom pipeline)"))
            }
            for env in environments where pipelines[env] == nil && pipelines["*"] == nil {
                problems.append(
                    .init(
                        key: r.key("pipelines"),
                        reason: "has no pipeline for environment \"\(env)\" (add it, or a \"*\" entry)"))
            }
        } else if kind?.ci.needsPipelines ?? true {
            problems.append(
                .init(key: r.key("pipelines"), reason: "is required: map each environment (or \"*\") to its pipeline"))
        }
        r.finish(&problems)
        guard problems.count == before, let kind, let repo, let method else { return nil }
        return Config.Integration(provider: kind, repo: repo, method: method, document: .object(document))
    }
}

extension Config.Grant {
    static func validate(
        _ table: JSONObject, path: String, config: Config, people: Set<String>, groups: Set<String>,
        problems: inout [ConfigError.Problem]
    ) -> Config.Grant? {
        var r = TableReader(table, path: path)
        let before = problems.count
        let person = r.string("person", &problems)
        let group = r.string("group", &problems)
        if (person == nil) == (group == nil) {
            problems.append(.init(key: path, reason: "name exactly one of person or group"))
        }
        if let person, !people.contains(person) {
            problems.append(.init(key: r.key("person"), reason: "\"\(person)\" is not in [people]"))
        }
        if let group, !groups.contains(group) {
            problems.append(.init(key: r.key("group"), reason: "\"\(group)\" is not in [groups]"))
        }
        let project = r.string("project", &problems, required: true) ?? ""
        let known = config.projects.first { $0.name == project }
        if !project.isEmpty, project != "*", known == nil {
            problems.append(.init(key: r.key("project"), reason: "\"\(project)\" is not in [projects]"))
        }
        let environments = r.strings("environments", &problems) ?? ["*"]
        if let known {
            for env in environments where env != "*" && !known.environments.contains(where: { $0.name == env }) {
                problems.append(
                    .init(key: r.key("environments"), reason: "\"\(env)\" is not an environment of \(project)"))
            }
        }
        var actions: [Action] = []
        if let names = r.strings("actions", &problems) {
            for n in names {
                if let a = Action(rawValue: n) {
                    actions.append(a)
                } else {
                    problems.append(
                        .init(
                            key: r.key("actions"),
                            reason: "\"\(n)\" must be deploy, approve, rollback, read or metrics"))
                }
            }
        } else {
            problems.append(.init(key: r.key("actions"), reason: "is required"))
        }
        if actions.contains(.metrics), project != "*" || environments != ["*"] {
            problems.append(
                .init(
                    key: r.key("actions"),
                    reason: "metrics cover every project: grant it on project \"*\", all environments"))
        }
        r.finish(&problems)
        guard problems.count == before else { return nil }
        return Config.Grant(
            person: person, group: group, project: project, environments: environments, actions: actions)
    }
}
