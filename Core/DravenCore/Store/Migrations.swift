/// Versioned schema migrations. Append-only: a migration that has shipped is never edited;
/// change the schema by adding one. Each is applied in its own `BEGIN IMMEDIATE` transaction and
/// recorded in `schema_migrations` (GRDB's `DatabaseMigrator` shape). Schema is plain SQL.
package enum Migrations {
    package static let all: [(id: String, sql: String)] = [
        ("0001-base", base),
        ("0002-secrets-dispatch", secretsAndDispatch),
        ("0003-webhooks", webhooks),
        ("0004-approvals", approvals),
        ("0005-leases-releases", leasesAndReleases),
        ("0009-edge", refusalCounts),
        ("0010-audit-subject", auditSubject),
        ("0011-console-sessions", consoleSessions),
        ("0012-job-logs", jobLogs),
        ("0013-live-releases", liveReleases),
        ("0014-log-spool", logSpool),
        ("0015-plans", plans),
        ("0016-plan-runs", planRuns),
        ("0017-events", events),
        ("0018-metrics", metrics),
    ]

    /// Applies every migration not yet recorded. Safe to run concurrently: the check and the
    /// apply happen under the same write lock.
    /// - Returns: the ids applied now.
    @discardableResult
    package static func migrate(_ db: Database, now: Int64 = Clock.now()) throws -> [String] {
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT")
        var applied: [String] = []
        for migration in all {
            try db.immediate { tx in
                let done =
                    try tx.db.scalar("SELECT 1 FROM schema_migrations WHERE id = ?1", [.text(migration.id)]) != nil
                guard !done else { return }
                try tx.db.execute(migration.sql)
                try tx.db.run(
                    "INSERT INTO schema_migrations (id, applied_at) VALUES (?1, ?2)", [.text(migration.id), .int(now)])
                // The count of applied migrations, readable with one cheap pragma on the request path.
                let count = try tx.db.scalar("SELECT count(*) FROM schema_migrations") ?? 0
                try tx.db.execute("PRAGMA user_version = \(count)")
                applied.append(migration.id)
            }
        }
        return applied
    }

    /// Whether every migration this binary knows has been applied (`PRAGMA user_version`).
    package static func isCurrent(_ db: Database) throws -> Bool {
        try db.scalar("PRAGMA user_version") ?? 0 >= Int64(all.count)
    }

    /// The migrations this binary knows but the database has not applied.
    package static func pending(_ db: Database) throws -> [String] {
        let hasTable =
            try db.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'") != nil
        guard hasTable else { return all.map(\.id) }
        let done = Set(try db.query("SELECT id FROM schema_migrations") { $0.text(0) })
        return all.map(\.id).filter { !done.contains($0) }
    }

    static let base = """
        -- Each applied configuration file: the source text, its hash, who applied it.
        CREATE TABLE config_versions (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL,
            source_path TEXT NOT NULL,
            source TEXT NOT NULL,
            applied_by TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        ) STRICT;

        -- Global settings from config (e.g. api.token_header).
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            retired INTEGER NOT NULL DEFAULT 0,
            config_version INTEGER NOT NULL REFERENCES config_versions(id)
        ) STRICT;

        CREATE TABLE environments (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            retired INTEGER NOT NULL DEFAULT 0,
            UNIQUE (project_id, name)
        ) STRICT;

        -- One policy per environment. `version` grows whenever its content changes, so an approval
        -- can be bound to the policy it was given under.
        CREATE TABLE policies (
            environment_id INTEGER PRIMARY KEY REFERENCES environments(id),
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            approvals_required INTEGER NOT NULL DEFAULT 0 CHECK (approvals_required >= 0),
            approver_groups TEXT NOT NULL DEFAULT '[]',      -- JSON array of group names
            self_approval INTEGER NOT NULL DEFAULT 0,
            approval_ttl_s INTEGER NOT NULL DEFAULT 86400,
            lock_mode TEXT NOT NULL DEFAULT 'queue' CHECK (lock_mode IN ('queue', 'reject')),
            lease_s INTEGER NOT NULL DEFAULT 600 CHECK (lease_s > 0),
            on_failure TEXT NOT NULL DEFAULT '[]',          -- JSON array: "diagnostic", "rollback"
            document TEXT NOT NULL                          -- the whole policy as applied (JSON)
        ) STRICT;

        -- Allowed refs: a ref may deploy if it matches any row (kind and glob).
        CREATE TABLE policy_refs (
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            kind TEXT NOT NULL CHECK (kind IN ('branch', 'tag', 'sha')),
            pattern TEXT NOT NULL,
            PRIMARY KEY (environment_id, kind, pattern)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE integrations (
            project_id INTEGER PRIMARY KEY REFERENCES projects(id),
            provider TEXT NOT NULL CHECK (provider IN ('github', 'gitlab', 'bitbucket', 'bitbucket-dc')),
            repo TEXT NOT NULL,
            method TEXT NOT NULL,
            document TEXT NOT NULL                           -- provider settings, secret *names*, env -> pipeline
                                                             -- map (JSON)
        ) STRICT;

        CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            handle TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            disabled INTEGER NOT NULL DEFAULT 0
        ) STRICT;

        -- Chat identities (platform user id -> person), for chat-ops.
        CREATE TABLE chat_identities (
            platform TEXT NOT NULL,
            user_id TEXT NOT NULL,
            person_id INTEGER NOT NULL REFERENCES people(id),
            PRIMARY KEY (platform, user_id)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE person_groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;

        CREATE TABLE group_members (
            group_id INTEGER NOT NULL REFERENCES person_groups(id) ON DELETE CASCADE,
            person_id INTEGER NOT NULL REFERENCES people(id),
            PRIMARY KEY (group_id, person_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX group_members_person ON group_members (person_id);

        -- A grant lets a person, or every member of a group, perform an action on a project's
        -- environment. '*' in project or environment means any.
        CREATE TABLE grants (
            id INTEGER PRIMARY KEY,
            person_id INTEGER REFERENCES people(id),
            group_id INTEGER REFERENCES person_groups(id) ON DELETE CASCADE,
            project TEXT NOT NULL,
            environment TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('deploy', 'approve', 'rollback', 'read')),
            CHECK ((person_id IS NULL) != (group_id IS NULL))
        ) STRICT;
        CREATE INDEX grants_person ON grants (person_id, action);
        CREATE INDEX grants_group ON grants (group_id, action);

        -- API tokens: `drv_<public id>_<secret>`. Only a keyed BLAKE2b hash of the whole token is kept.
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            public_id TEXT NOT NULL UNIQUE,
            person_id INTEGER NOT NULL REFERENCES people(id),
            name TEXT NOT NULL DEFAULT '',
            hash BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT;

        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback', 'diagnostic')),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            ref TEXT NOT NULL,                 -- fully qualified: refs/heads/x, refs/tags/x, or a sha
            ref_kind TEXT NOT NULL CHECK (ref_kind IN ('branch', 'tag', 'sha')),
            sha TEXT,
            reason TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            requested_by INTEGER NOT NULL REFERENCES people(id),
            policy_version INTEGER NOT NULL,
            fencing_token INTEGER,             -- the lock's token while this job holds it
            run_id TEXT,                       -- the provider's run/pipeline id once known
            parent_job_id INTEGER REFERENCES jobs(id),
            idempotency_key TEXT,
            request_digest TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX jobs_idempotency ON jobs (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX jobs_env_state ON jobs (environment_id, state, id);
        CREATE INDEX jobs_state ON jobs (state, updated_at);
        CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;

        CREATE TABLE job_events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            at INTEGER NOT NULL,
            event TEXT NOT NULL,               -- created, transition, ignored, …
            from_state TEXT,
            to_state TEXT,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'  -- JSON
        ) STRICT;
        CREATE INDEX job_events_job ON job_events (job_id, id);

        -- One row per (project, environment) once first used. `fencing_token` only grows; `job_id`
        -- is NULL while the lock is free.
        CREATE TABLE locks (
            environment_id INTEGER PRIMARY KEY REFERENCES environments(id),
            job_id INTEGER REFERENCES jobs(id),
            fencing_token INTEGER NOT NULL DEFAULT 0,
            acquired_at INTEGER,
            lease_until INTEGER
        ) STRICT;
        CREATE UNIQUE INDEX locks_job ON locks (job_id) WHERE job_id IS NOT NULL;

        -- Webhook deliveries seen, by the provider's delivery id (dedup).
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            event TEXT NOT NULL DEFAULT '',
            job_id INTEGER REFERENCES jobs(id),
            received_at INTEGER NOT NULL,
            payload TEXT NOT NULL DEFAULT '',
            UNIQUE (source, delivery_id)
        ) STRICT;

        -- Outbound calls to make after commit (dispatches, notifications).
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,                -- dispatch, notify, …
            job_id INTEGER REFERENCES jobs(id),
            payload TEXT NOT NULL,             -- JSON; never a secret (secrets are named, not copied)
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivering', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            delivered_at INTEGER,
            last_error TEXT
        ) STRICT;
        CREATE INDEX outbox_due ON outbox (state, next_attempt_at) WHERE state IN ('pending', 'delivering');
        CREATE INDEX outbox_job ON outbox (job_id);

        -- Tamper-evident audit trail: each row's hash covers its content and the previous row's hash.
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            outcome TEXT NOT NULL,             -- ok, refused
            detail TEXT NOT NULL DEFAULT '{}', -- JSON
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        ) STRICT;
        """

    static let secretsAndDispatch = """
        -- The highest secrets-file generation this installation has seen, per store (rollback ratchet).
        CREATE TABLE secrets_state (
            store_id TEXT PRIMARY KEY,
            max_generation INTEGER NOT NULL,
            manifest_hash TEXT NOT NULL,
            seen_at INTEGER NOT NULL
        ) STRICT;

        -- Sealed (CI) values already imported, so an old blob cannot be replayed.
        CREATE TABLE secrets_seals (seal_id TEXT PRIMARY KEY, name TEXT NOT NULL, imported_at INTEGER NOT NULL) STRICT;

        -- The provider's page for the run, once dispatched.
        ALTER TABLE jobs ADD COLUMN run_url TEXT;
        """

    static let webhooks = """
        -- Webhook dedupe also by body hash: delivery-id headers are not signed.
        ALTER TABLE deliveries ADD COLUMN body_hash TEXT;
        CREATE UNIQUE INDEX deliveries_body ON deliveries (source, body_hash) WHERE body_hash IS NOT NULL;
        -- An event for a run draven does not know yet keeps its run key and reported state, so it can
        -- be applied when the deliverer records that run id.
        ALTER TABLE deliveries ADD COLUMN run_key TEXT;
        ALTER TABLE deliveries ADD COLUMN reported_state TEXT;
        CREATE INDEX deliveries_unmatched ON deliveries (source, run_key) WHERE job_id IS NULL AND run_key IS NOT NULL;
        -- What the runner's final callback reports.
        ALTER TABLE jobs ADD COLUMN log_url TEXT;
        ALTER TABLE jobs ADD COLUMN release_id TEXT;
        -- Where a project's job outcomes are announced (JSON: secret names and addresses).
        ALTER TABLE projects ADD COLUMN notify TEXT NOT NULL DEFAULT '{}';
        """

    static let approvals = """
        -- Votes on jobs awaiting approval. A vote is bound to the job's commit sha ('' while unknown)
        -- and the environment's policy version when it was given: only votes matching both count.
        -- One approval per person per binding (a person who approved may still reject).
        CREATE TABLE approvals (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            person_id INTEGER NOT NULL REFERENCES people(id),
            decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
            comment TEXT NOT NULL DEFAULT '',
            sha TEXT NOT NULL,
            policy_version INTEGER NOT NULL,
            via TEXT NOT NULL,                 -- api, slack, teams, mattermost
            chat_user TEXT,                    -- the platform's user id, for chat votes
            at INTEGER NOT NULL,
            UNIQUE (job_id, person_id, decision, sha, policy_version)
        ) STRICT;

        -- Approval-request messages draven posted (Slack: channel id and ts), to update when decided.
        CREATE TABLE approval_messages (
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            PRIMARY KEY (job_id, platform)
        ) STRICT, WITHOUT ROWID;
        """

    static let leasesAndReleases = """
        -- The runner's last heartbeat and the progress it reported (JSON {step, percent, message}).
        ALTER TABLE jobs ADD COLUMN heartbeat_at INTEGER;
        ALTER TABLE jobs ADD COLUMN progress TEXT;
        -- When the provider last told draven about the run (webhook or poll): sweep polls silent runs.
        ALTER TABLE jobs ADD COLUMN provider_seen_at INTEGER;

        -- What has been live on each environment: one row per succeeded deploy or rollback. The live
        -- release is the newest row of its environment (live_until IS NULL).
        CREATE TABLE releases (
            id INTEGER PRIMARY KEY,
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            job_id INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
            ref TEXT NOT NULL,
            ref_kind TEXT NOT NULL,
            sha TEXT,
            release_id TEXT,                   -- what the runner reported (e.g. Deployer's release name)
            live_from INTEGER NOT NULL,
            live_until INTEGER
        ) STRICT;
        CREATE INDEX releases_env ON releases (environment_id, id);

        -- A rollback job's target release.
        ALTER TABLE jobs ADD COLUMN to_release INTEGER REFERENCES releases(id);
        CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
        """

    static let refusalCounts = """
        -- 0009-edge. Refusals of clients that proved no identity, counted instead of chained in `audit`
        -- (RefusalCounts): one row per client address, function, problem type and hour.
        CREATE TABLE refusal_counts (
            client TEXT NOT NULL,              -- REMOTE_ADDR
            function TEXT NOT NULL,
            problem TEXT NOT NULL,             -- the problem type's name (unauthenticated, bad-signature, …)
            bucket INTEGER NOT NULL,           -- the hour's start (unix seconds)
            status INTEGER NOT NULL,
            first_at INTEGER NOT NULL,
            last_at INTEGER NOT NULL,
            count INTEGER NOT NULL,
            last_path TEXT NOT NULL,           -- the latest refused request's path, at most 256 bytes
            last_detail TEXT NOT NULL,         -- and the answer's detail, at most 256 bytes
            PRIMARY KEY (client, function, problem, bucket)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX refusal_counts_bucket ON refusal_counts (bucket);   -- `draven sweep` forgets old hours

        -- A `metrics` grant (GET /metrics): the action's CHECK names it, so the table is rebuilt
        -- (nothing references grants; config apply rewrites it whole anyway).
        CREATE TABLE grants_new (
            id INTEGER PRIMARY KEY,
            person_id INTEGER REFERENCES people(id),
            group_id INTEGER REFERENCES person_groups(id) ON DELETE CASCADE,
            project TEXT NOT NULL,
            environment TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('deploy', 'approve', 'rollback', 'read', 'metrics')),
            CHECK ((person_id IS NULL) != (group_id IS NULL))
        ) STRICT;
        INSERT INTO grants_new (id, person_id, group_id, project, environment, action)
            SELECT id, person_id, group_id, project, environment, action FROM grants;
        DROP TABLE grants;
        ALTER TABLE grants_new RENAME TO grants;
        CREATE INDEX grants_person ON grants (person_id, action);
        CREATE INDEX grants_group ON grants (group_id, action);
        """

    static let auditSubject = """
        -- 0010-audit-subject. A job's audit records by subject ('job/<id>'), for its timeline in the
        -- console (each failed dispatch attempt, refused requests, repeated votes): without it that
        -- read scans the whole trail.
        CREATE INDEX audit_subject ON audit (subject, id);
        """

    static let consoleSessions = """
        -- 0011. Web console sign-ins (Sessions, SignInLinks). Only keyed BLAKE2b hashes of the secrets are
        -- stored (key: the token-hash key, outside the database), as for api_tokens.
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            public_id TEXT NOT NULL UNIQUE,    -- shown by `draven sessions list`, names it for revoke
            hash BLOB NOT NULL,                -- keyed hash of the whole cookie value
            person_id INTEGER NOT NULL REFERENCES people(id),
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL,
            idle_s INTEGER NOT NULL,           -- ends when unused this long (8 h)
            expires_at INTEGER NOT NULL,       -- and at the latest then (created + 7 d)
            revoked_at INTEGER,
            method TEXT NOT NULL CHECK (method IN ('token', 'link', 'proxy')),
            remote TEXT NOT NULL DEFAULT ''    -- REMOTE_ADDR at sign-in
        ) STRICT;
        CREATE INDEX sessions_person ON sessions (person_id);

        -- One-time sign-in links (`draven console link`): usable once, until expires_at.
        CREATE TABLE sign_in_links (
            id INTEGER PRIMARY KEY,
            public_id TEXT NOT NULL UNIQUE,
            hash BLOB NOT NULL,                -- keyed hash of the whole link token
            person_id INTEGER NOT NULL REFERENCES people(id),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at INTEGER,
            session_id INTEGER REFERENCES sessions(id)
        ) STRICT;
        """

    static let jobLogs = """
        -- 0012-job-logs. The deploy's own output, archived (JobLogs): the runner streams it in numbered
        -- chunks (POST /hooks/runner/log, seq 1, 2, 3 … without gaps), each kept deflate-compressed.
        -- One row per job with a log: its totals, where the per-job cap cut it, when sweep pruned it.
        CREATE TABLE job_logs (
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            last_seq INTEGER NOT NULL,         -- the newest chunk received
            last_hash BLOB NOT NULL,           -- BLAKE2b-128 of that chunk's data as received (after masking)
            bytes INTEGER NOT NULL,            -- bytes stored (as inflated), the cut's mark included
            stored INTEGER NOT NULL,           -- bytes stored on disk (compressed)
            cut_seq INTEGER,                   -- the chunk at which the cap cut the log; NULL while whole
            dropped INTEGER NOT NULL DEFAULT 0,   -- bytes received after the cut, not stored
            first_at INTEGER NOT NULL,
            last_at INTEGER NOT NULL,          -- the newest chunk's arrival: retention counts from it
            pruned_at INTEGER                  -- when draven sweep removed its chunks (logs.retention)
        ) STRICT;
        CREATE INDEX job_logs_prune ON job_logs (last_at) WHERE pruned_at IS NULL;

        -- The stored chunks (a rowid table: rows carry up to 64 KiB, which WITHOUT ROWID handles badly).
        -- A chunk is written as it came (encoding 0) and compressed by the next `draven sweep` pass.
        CREATE TABLE job_log_chunks (
            job_id INTEGER NOT NULL REFERENCES job_logs(job_id),
            seq INTEGER NOT NULL,
            size INTEGER NOT NULL,             -- bytes once inflated
            hash BLOB NOT NULL,                -- BLAKE2b-128 of the chunk as received: a repeat is compared with it
            -- 0: the bytes, not compressed yet; 1: zlib; 2: the bytes, kept so (compressing did not shrink them)
            encoding INTEGER NOT NULL CHECK (encoding IN (0, 1, 2)),
            data BLOB NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (job_id, seq)
        ) STRICT;
        CREATE INDEX job_log_chunks_raw ON job_log_chunks (at) WHERE encoding = 0;
        """

    static let liveReleases = """
        -- 0013-live-releases. Every environment's live release in one indexed read (the console's
        -- overview: Releases.liveAll), instead of a scan of the whole history.
        CREATE INDEX releases_live ON releases (environment_id) WHERE live_until IS NULL;
        """

    static let logSpool = """
        -- 0014-log-spool. A chunk's bytes are written to the job's spool file (<database>-logs/<job id>)
        -- on the request path, and moved into `data`, compressed, by draven sweep (JobLogs+Spool.swift).
        -- While spooled: encoding 0, `data` empty, `spool_offset` where they start in the file.
        ALTER TABLE job_log_chunks ADD COLUMN spool_offset INTEGER;
        """

    static let plans = """
        -- 0015-plans. Deploy plans (Plans): one row per applied version of each plan. A version is never
        -- changed or removed: a run keeps the version it started with.
        CREATE TABLE plans (
            id TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            digest TEXT NOT NULL,              -- SHA-256 of the canonical document without its version (Plan.digest)
            document TEXT NOT NULL,            -- the canonical document (Plan.json), its version included
            applied_at INTEGER NOT NULL,
            applied_by TEXT NOT NULL,          -- the person's handle, or cli:USER for draven apply
            PRIMARY KEY (id, version)
        ) STRICT;

        -- The latest version's push triggers, one row each: what a push webhook looks up (by project
        -- and kind) without reading every plan's document.
        CREATE TABLE plan_triggers (
            plan_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            project TEXT NOT NULL,
            ref_kind TEXT NOT NULL CHECK (ref_kind IN ('tag', 'branch')),
            pattern TEXT NOT NULL,             -- a glob over the tag's or branch's name
            input TEXT NOT NULL,               -- the input the pushed name fills
            run_as TEXT NOT NULL,              -- the handle of the person the run is requested by
            PRIMARY KEY (plan_id, position)
        ) STRICT;
        CREATE INDEX plan_triggers_push ON plan_triggers (project, ref_kind);
        """

    static let planRuns = """
        -- 0016-plan-runs. Runs of deploy plans (PlanRuns): each keeps the plan it started with (a
        -- snapshot, so later versions never change it) and one row per step.
        CREATE TABLE plan_runs (
            id INTEGER PRIMARY KEY,
            plan_id TEXT NOT NULL,
            plan_version INTEGER NOT NULL,
            plan TEXT NOT NULL,                -- the plan as it runs (Plan.snapshot)
            status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'failed', 'succeeded', 'compensating',
                                                   'compensated', 'compensation_failed', 'cancelled')),
            inputs TEXT NOT NULL,              -- JSON object: every input, defaults filled
            reason TEXT NOT NULL DEFAULT '',
            started_by INTEGER NOT NULL REFERENCES people(id),
            idempotency_key TEXT,
            request_digest TEXT,
            started_at INTEGER NOT NULL,
            progressed_at INTEGER NOT NULL,    -- when a step last started or ended ("stuck" counts from it)
            ended_at INTEGER,
            detail TEXT NOT NULL DEFAULT '{}'  -- why it ended: the failed step, what compensation left
        ) STRICT;
        CREATE INDEX plan_runs_status ON plan_runs (status, id);
        CREATE INDEX plan_runs_plan ON plan_runs (plan_id, id);
        CREATE UNIQUE INDEX plan_runs_idempotency ON plan_runs (started_by, idempotency_key)
            WHERE idempotency_key IS NOT NULL;

        CREATE TABLE plan_steps (
            run_id INTEGER NOT NULL REFERENCES plan_runs(id),
            step_id TEXT NOT NULL,
            position INTEGER NOT NULL,         -- in the plan's document order
            status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'retrying', 'succeeded', 'failed',
                                                   'timed_out', 'skipped', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            budget_from INTEGER NOT NULL DEFAULT 0,  -- attempts made before the last manual retry
            job_id INTEGER REFERENCES jobs(id),      -- the job of the last attempt (deploy, diagnostic)
            started_at INTEGER,                -- the first attempt's start
            attempt_at INTEGER,                -- the last attempt's start
            completed_at INTEGER,
            due_at INTEGER,                    -- when sweep acts next: a wait ends, a retry starts, a check goes out
            deadline_at INTEGER,               -- when the attempt times out
            cause TEXT,                        -- why the last attempt failed (Plan.Cause, or refused, rejected …)
            reason TEXT NOT NULL DEFAULT '',   -- why it was skipped, or how it ended
            outputs TEXT NOT NULL DEFAULT '{}',
            ok_since INTEGER,                  -- a check: since when its answers have had the expected status
            compensation TEXT CHECK (compensation IN ('running', 'compensated', 'unchanged', 'failed')),
            compensation_job INTEGER REFERENCES jobs(id),
            PRIMARY KEY (run_id, step_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX plan_steps_job ON plan_steps (job_id) WHERE job_id IS NOT NULL;
        CREATE INDEX plan_steps_compensation_job ON plan_steps (compensation_job) WHERE compensation_job IS NOT NULL;
        CREATE INDEX plan_steps_due ON plan_steps (due_at) WHERE due_at IS NOT NULL;
        CREATE INDEX plan_steps_deadline ON plan_steps (deadline_at) WHERE deadline_at IS NOT NULL;

        -- Votes on approval steps: one per person and step.
        CREATE TABLE plan_step_votes (
            run_id INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            person_id INTEGER NOT NULL REFERENCES people(id),
            decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
            comment TEXT NOT NULL DEFAULT '',
            at INTEGER NOT NULL,
            PRIMARY KEY (run_id, step_id, person_id),
            FOREIGN KEY (run_id, step_id) REFERENCES plan_steps(run_id, step_id)
        ) STRICT, WITHOUT ROWID;

        -- The environments a run deployed to, with the release live before it first did: where
        -- compensation rolls back to, and how it tells whether the run changed anything there.
        CREATE TABLE plan_run_environments (
            run_id INTEGER NOT NULL REFERENCES plan_runs(id),
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            release_before INTEGER REFERENCES releases(id),   -- NULL: the environment had no release
            touched_at INTEGER NOT NULL,
            PRIMARY KEY (run_id, environment_id)
        ) STRICT, WITHOUT ROWID;
        """

    static let events = """
        -- 0017-events. The event stream (Events): what happened, each subscriber's ordered stream of
        -- it, and the delivery log; and the W3C trace context a request came with (TraceContext).
        ALTER TABLE jobs ADD COLUMN traceparent TEXT;
        ALTER TABLE plan_runs ADD COLUMN traceparent TEXT;

        -- Rows of one stream (a subscriber's events) are delivered one at a time, in id order:
        -- a row is claimed only when no older row of its stream is still pending or being delivered.
        ALTER TABLE outbox ADD COLUMN stream TEXT;
        CREATE INDEX outbox_stream ON outbox (stream, id)
            WHERE stream IS NOT NULL AND state IN ('pending', 'delivering');

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,     -- the CloudEvents id: the same on every attempt and redelivery
            name TEXT NOT NULL,                -- draven's name (job.finished), what subscriptions filter on
            type TEXT NOT NULL,                -- the CloudEvents type
            source TEXT NOT NULL,              -- the CloudEvents source ([events] source)
            subject TEXT NOT NULL,             -- job/57, plan_run/12
            at INTEGER NOT NULL,
            job_id INTEGER REFERENCES jobs(id),
            plan_run_id INTEGER REFERENCES plan_runs(id),
            traceparent TEXT,
            data TEXT NOT NULL                 -- the CloudEvents data (JSON)
        ) STRICT;
        CREATE INDEX events_at ON events (at);

        -- Each subscriber's stream: its events in order, numbered from 1 (the `sequence` attribute).
        CREATE TABLE event_deliveries (
            subscription TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event INTEGER NOT NULL REFERENCES events(id),
            PRIMARY KEY (subscription, sequence)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX event_deliveries_event ON event_deliveries (event);

        -- The delivery log: one row per attempt. Never the URL or the secret.
        CREATE TABLE event_attempts (
            id INTEGER PRIMARY KEY,
            outbox_id INTEGER NOT NULL REFERENCES outbox(id),
            subscription TEXT NOT NULL,
            event INTEGER NOT NULL REFERENCES events(id),
            attempt INTEGER NOT NULL,
            at INTEGER NOT NULL,
            status INTEGER,                    -- the receiver's HTTP status; NULL when none came
            error TEXT,
            duration_ms INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX event_attempts_event ON event_attempts (event, id);
        """

    static let metrics = """
        -- 0018-metrics. What GET /metrics reads (Metrics), kept where each fact happens so a scrape reads a
        -- few rows per environment instead of the whole history. Ended jobs never change, so their totals
        -- and histograms are added to once, by the transition that ends them (Transition.CountMetrics).
        --
        -- Ended jobs per environment, kind, final state and whether they were dispatched (took the lock).
        CREATE TABLE job_totals (
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            dispatched INTEGER NOT NULL CHECK (dispatched IN (0, 1)),
            count INTEGER NOT NULL,
            PRIMARY KEY (environment_id, kind, state, dispatched)
        ) STRICT, WITHOUT ROWID;
        -- Histograms (seconds) and DORA counters per environment (JobMetrics): one row per bucket of each
        -- histogram (`le` its upper bound, 0 for a plain counter; counts per bucket, not cumulative).
        CREATE TABLE job_metrics (
            environment_id INTEGER NOT NULL REFERENCES environments(id),
            name TEXT NOT NULL,
            le INTEGER NOT NULL,
            count INTEGER NOT NULL,
            sum INTEGER NOT NULL,
            PRIMARY KEY (environment_id, name, le)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO job_totals (environment_id, kind, state, dispatched, count)
            SELECT j.environment_id, j.kind, j.state,
                   EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.to_state = 'dispatching'), count(*)
            FROM jobs j WHERE j.state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'rejected', 'expired')
            GROUP BY 1, 2, 3, 4;

        -- Outbox rows that settled (delivered or dead), per kind, with the attempts they took (Outbox.settle).
        CREATE TABLE outbox_totals (
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            count INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            PRIMARY KEY (kind, state)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO outbox_totals (kind, state, count, attempts)
            SELECT kind, state, count(*), sum(attempts) FROM outbox WHERE state IN ('delivered', 'dead') GROUP BY 1, 2;

        -- Provider webhooks taken, by outcome (applied, stored, ignored), per provider and project
        -- (Deliveries.countOutcome).
        CREATE TABLE delivery_outcomes (
            provider TEXT NOT NULL,
            project TEXT NOT NULL,
            outcome TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (provider, project, outcome)
        ) STRICT, WITHOUT ROWID;

        -- What /metrics counts of requests that change nothing else, kept for good (refusal_counts' hourly
        -- rows are pruned) and written like them (RefusalCounts.countForMetrics): provider webhooks refused
        -- or repeated (a duplicate delivery), and requests refused for a stale fencing token.
        CREATE TABLE refusal_totals (
            what TEXT NOT NULL CHECK (what IN ('webhook-refused', 'webhook-duplicate', 'stale-fencing-token')),
            provider TEXT NOT NULL,            -- a webhook's provider ('' for a stale token)
            project TEXT NOT NULL,             -- a webhook's project ('' when refused before it was known)
            environment_id INTEGER NOT NULL,   -- a stale token's environment (0 for a webhook)
            count INTEGER NOT NULL,
            PRIMARY KEY (what, provider, project, environment_id)
        ) STRICT, WITHOUT ROWID;

        -- When a commit was made, as the provider's push said (Commits): lead time counts from it.
        CREATE TABLE commits (
            project_id INTEGER NOT NULL REFERENCES projects(id),
            sha TEXT NOT NULL,
            committed_at INTEGER NOT NULL,
            PRIMARY KEY (project_id, sha)
        ) STRICT, WITHOUT ROWID;

        -- draven sweep's passes (SweepPasses): one row, added to by every pass.
        CREATE TABLE sweep_passes (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            passes INTEGER NOT NULL,
            micros INTEGER NOT NULL,           -- their total duration
            last_at INTEGER NOT NULL,          -- when the latest ended (unix seconds)
            last_micros INTEGER NOT NULL
        ) STRICT;
        """
}
