/// Writes a validated configuration into the store in one transaction, as a new config
/// version. Names are the identities: projects, environments and people are updated in place
/// (jobs refer to them); those no longer declared are retired or disabled, never deleted.
/// Groups, grants, chat identities and settings are replaced. A policy whose content changed
/// gets the next version number (approvals are bound to it).
///
/// The single writer of the configuration tables: `config_versions`, `projects`,
/// `environments`, `integrations`, `people`, `person_groups`, `group_members`, `grants`,
/// `chat_identities`, `policies`, `policy_refs` and `settings`. Nothing else writes them; their
/// reads elsewhere go through `Target` (projects, environments), `People` (people, chat
/// identities), `HookIntegration` (integrations), `Grants`, `Policy` and `Settings`.
package enum ConfigApply {
    package struct Summary: Sendable {
        package var version: Int64
        package var projects = 0, environments = 0, people = 0, grants = 0
        package var policiesChanged: [String] = []
    }

    /// What a valid configuration does that its author may not expect, as `KEY: WHY` lines;
    /// printed by `draven apply` (also with `--dry-run`), which still applies it.
    package static func warnings(_ config: Config) -> [String] {
        config.projects.compactMap { project in
            guard let i = project.integration, let object = i.document.objectValue,
                let why = RunControl.refusal(provider: i.provider, method: i.method, integration: object)
            else { return nil }
            return "projects.\(project.name).integration: \(why); draven will not poll or cancel its runs "
                + "and relies on webhooks and the lease"
        }
    }

    package static func apply(
        _ tx: Transaction, _ config: Config, source: String, path: String, appliedBy: String, now: Int64
    ) throws -> Summary {
        let db = tx.db
        let sha = Sodium.sha256Hex(Array(source.utf8))
        try db.run(
            "INSERT INTO config_versions (sha256, source_path, source, applied_by, applied_at) VALUES (?1, ?2, ?3, ?4, "
                + "?5)",
            [.text(sha), .text(path), .text(source), .text(appliedBy), .int(now)])
        var summary = Summary(version: db.lastInsertRowID)

        try db.run("DELETE FROM settings")
        if let header = config.tokenHeader {
            try db.run("INSERT INTO settings (key, value) VALUES ('api.token_header', ?1)", [.text(header)])
        }
        if let bytes = config.logMaxJobBytes {
            try db.run("INSERT INTO settings (key, value) VALUES ('logs.max_job_bytes', ?1)", [.text(String(bytes))])
        }
        if let seconds = config.logRetention {
            try db.run("INSERT INTO settings (key, value) VALUES ('logs.retention', ?1)", [.text(String(seconds))])
        }
        if let header = config.proxyUserHeader {
            try db.run("INSERT INTO settings (key, value) VALUES ('console.proxy_user_header', ?1)", [.text(header)])
            try db.run(
                "INSERT INTO settings (key, value) VALUES ('console.trusted_proxies', ?1)",
                [.text(JSON.array(config.trustedProxies.map(JSON.string)).serialized())])
        }
        if let chatops = config.chatops {
            try db.run(
                "INSERT INTO settings (key, value) VALUES ('chatops', ?1)", [.text(JSON.object(chatops).serialized())])
        }
        if let events = config.events {
            try db.run(
                "INSERT INTO settings (key, value) VALUES ('events', ?1)", [.text(JSON.object(events).serialized())])
        }
        if let smtp = config.smtp {
            try db.run("INSERT INTO settings (key, value) VALUES ('smtp', ?1)", [.text(JSON.object(smtp).serialized())])
        }

        // People: upsert; those no longer declared are disabled (their tokens stop working).
        try db.run("UPDATE people SET disabled = 1")
        try db.run("DELETE FROM chat_identities")
        for person in config.people {
            try db.run(
                """
                INSERT INTO people (handle, name, email, disabled) VALUES (?1, ?2, ?3, 0)
                ON CONFLICT (handle) DO UPDATE SET name = excluded.name, email = excluded.email, disabled = 0
                """, [.text(person.handle), .text(person.name), .text(person.email)])
            for (platform, user) in person.chat {
                try db.run(
                    "INSERT INTO chat_identities (platform, user_id, person_id) SELECT ?1, ?2, id FROM people WHERE "
                        + "handle = ?3",
                    [.text(platform), .text(user), .text(person.handle)])
            }
        }
        summary.people = config.people.count

        try db.run("DELETE FROM grants")
        try db.run("DELETE FROM group_members")
        try db.run("DELETE FROM person_groups")
        for group in config.groups {
            try db.run("INSERT INTO person_groups (name) VALUES (?1)", [.text(group.name)])
            let gid = db.lastInsertRowID
            for m in Set(group.members) {
                try db.run(
                    "INSERT INTO group_members (group_id, person_id) SELECT ?1, id FROM people WHERE handle = ?2",
                    [.int(gid), .text(m)])
            }
        }
        for grant in config.grants {
            for env in grant.environments {
                for action in grant.actions {
                    try db.run(
                        """
                        INSERT INTO grants (person_id, group_id, project, environment, action)
                        VALUES ((SELECT id FROM people WHERE handle = ?1), (SELECT id FROM person_groups WHERE name =
                        ?2), ?3, ?4, ?5)
                        """,
                        [
                            .text(grant.person), .text(grant.group), .text(grant.project), .text(env),
                            .text(action.rawValue),
                        ])
                    summary.grants += 1
                }
            }
        }

        try db.run("UPDATE projects SET retired = 1")
        try db.run("UPDATE environments SET retired = 1")
        for project in config.projects {
            try db.run(
                """
                INSERT INTO projects (name, description, retired, config_version, notify) VALUES (?1, ?2, 0, ?3, ?4)
                ON CONFLICT (name) DO UPDATE SET description = excluded.description, retired = 0, config_version =
                excluded.config_version,
                    notify = excluded.notify
                """,
                [
                    .text(project.name), .text(project.description), .int(summary.version),
                    .text(JSON.object(project.notify).serialized()),
                ])
            guard let pid = try db.scalar("SELECT id FROM projects WHERE name = ?1", [.text(project.name)]) else {
                continue
            }
            summary.projects += 1
            for env in project.environments {
                try db.run(
                    """
                    INSERT INTO environments (project_id, name, retired) VALUES (?1, ?2, 0)
                    ON CONFLICT (project_id, name) DO UPDATE SET retired = 0
                    """, [.int(pid), .text(env.name)])
                guard
                    let eid = try db.scalar(
                        "SELECT id FROM environments WHERE project_id = ?1 AND name = ?2", [.int(pid), .text(env.name)])
                else { continue }
                summary.environments += 1
                if try applyPolicy(tx, env, environmentID: eid) {
                    summary.policiesChanged.append("\(project.name)/\(env.name)")
                }
            }
            if let integration = project.integration {
                try db.run(
                    """
                    INSERT INTO integrations (project_id, provider, repo, method, document) VALUES (?1, ?2, ?3, ?4, ?5)
                    ON CONFLICT (project_id) DO UPDATE SET provider = excluded.provider, repo = excluded.repo, method
                    = excluded.method,
                        document = excluded.document
                    """,
                    [
                        .int(pid), .text(integration.provider.rawValue), .text(integration.repo),
                        .text(integration.method),
                        .text(integration.document.serialized()),
                    ])
            } else {
                try db.run("DELETE FROM integrations WHERE project_id = ?1", [.int(pid)])
            }
        }
        try Audit.record(
            tx, at: now, actor: appliedBy, action: "config.apply", subject: "config/\(summary.version)",
            detail: [
                "sha256": .string(sha), "path": .string(path), "projects": .int(Int64(summary.projects)),
                "environments": .int(Int64(summary.environments)), "people": .int(Int64(summary.people)),
                "policies_changed": .array(summary.policiesChanged.map(JSON.string)),
            ])
        return summary
    }

    /// Writes an environment's policy; returns true when it is new or its content changed.
    private static func applyPolicy(_ tx: Transaction, _ env: Config.Environment, environmentID eid: Int64) throws
        -> Bool
    {
        let document = env.document.serialized()
        let digest = Sodium.sha256Hex(Array(document.utf8))
        let current = try tx.db.first("SELECT version, digest FROM policies WHERE environment_id = ?1", [.int(eid)]) {
            ($0.int(0), $0.text(1))
        }
        if let current, current.1 == digest { return false }
        let version = (current?.0 ?? 0) + 1
        try tx.db.run(
            """
            INSERT INTO policies (environment_id, version, digest, approvals_required, approver_groups,
            self_approval, approval_ttl_s,
                                  lock_mode, lease_s, on_failure, document)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            ON CONFLICT (environment_id) DO UPDATE SET version = excluded.version, digest = excluded.digest,
                approvals_required = excluded.approvals_required, approver_groups = excluded.approver_groups,
                self_approval = excluded.self_approval, approval_ttl_s = excluded.approval_ttl_s, lock_mode =
                excluded.lock_mode,
                lease_s = excluded.lease_s, on_failure = excluded.on_failure, document = excluded.document
            """,
            [
                .int(eid), .int(version), .text(digest), .int(env.approvals),
                .text(JSON.array(env.approverGroups.map(JSON.string)).serialized()),
                .bool(env.selfApproval), .int(env.approvalTTL), .text(env.lock.rawValue), .int(env.lease),
                .text(JSON.array(env.onFailure.map { .string($0.rawValue) }).serialized()), .text(document),
            ])
        try tx.db.run("DELETE FROM policy_refs WHERE environment_id = ?1", [.int(eid)])
        for rule in env.refs {
            try tx.db.run(
                "INSERT OR IGNORE INTO policy_refs (environment_id, kind, pattern) VALUES (?1, ?2, ?3)",
                [.int(eid), .text(rule.kind.rawValue), .text(rule.pattern)])
        }
        return true
    }
}
