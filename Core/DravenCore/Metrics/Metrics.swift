/// Prometheus text exposition (format 0.0.4) of `GET /metrics`, computed from the store at scrape
/// time (functions are separate processes: nothing is counted in memory). Owns no table: each
/// figure comes from the type that owns its table — open jobs and ended-job totals (`JobMetrics`),
/// locks (`Locks`), webhooks (`Deliveries`), the outbox (`Outbox`), sweep passes (`SweepPasses`),
/// the audit trail, plan runs (`PlanRuns`) — one read each, none over a table's whole history.
///
/// Labels are project and environment only (and a small closed set: kind, state, result, outcome,
/// provider): never a job, a ref or a person, so the series stay few (argo-cd#16094). Families
/// that every environment has (queue depth, approvals waiting, locks held, completed deploys) are
/// written for every live environment, zeros included, so an alert sees 0 rather than nothing.
/// README "Metrics and alerts" lists every family; `infra/prometheus/draven-rules.yml` alerts on them.
package enum Metrics {
    package static func render(_ db: Database, now: Int64 = Clock.now()) throws -> String {
        var out = Exposition()
        let envs = try Target.environments(db)
        var labels: [Int64: String] = [:]
        for env in envs {
            labels[env.id] = "project=\"\(escape(env.project))\",environment=\"\(escape(env.environment))\""
        }
        let refusals = try RefusalCounts.totals(db)
        try jobs(db, &out, envs.map(\.id), labels, now: now)
        try locks(db, &out, envs.map(\.id), labels, refusals, now: now)
        try webhooks(db, &out, refusals)
        try outbox(db, &out)
        try sweep(db, &out)
        out.family("draven_audit_records", .gauge, "Records in the audit trail.")
        out.sample("draven_audit_records", "", try Audit.count(db))
        out.text += try plans(db)
        return out.text
    }

    // MARK: - jobs, queues, approvals, DORA

    static func jobs(_ db: Database, _ out: inout Exposition, _ envs: [Int64], _ labels: [Int64: String], now: Int64)
        throws
    {
        let open = try JobMetrics.open(db, now: now).filter { labels[$0.environment] != nil }
        let totals = try JobMetrics.totals(db).filter { labels[$0.environment] != nil }
        let rows = try JobMetrics.rows(db).filter { labels[$0.environment] != nil }

        out.family("draven_jobs", .gauge, "Jobs by kind and state (open ones and all that ended).")
        var byKindState: [String: Int64] = [:]
        var keys: [(Int64, String, String)] = []
        func add(_ env: Int64, _ kind: String, _ state: String, _ n: Int64) {
            let key = "\(env)|\(kind)|\(state)"
            if byKindState[key] == nil { keys.append((env, kind, state)) }
            byKindState[key, default: 0] += n
        }
        // Open jobs are deploys, rollbacks or diagnostics: `open` does not say which, so they are read by kind
        // from the same index (a handful of rows).
        for (env, kind, state, n) in try JobMetrics.openKinds(db) where labels[env] != nil { add(env, kind, state, n) }
        for t in totals { add(t.environment, t.kind, t.state, t.count) }
        for env in envs {
            for state in JobState.allCases { add(env, JobKind.deploy.rawValue, state.rawValue, 0) }
        }
        for (env, kind, state) in keys.sorted(by: { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }) {
            out.sample(
                "draven_jobs", "\(labels[env]!),kind=\"\(kind)\",state=\"\(state)\"",
                byKindState["\(env)|\(kind)|\(state)"] ?? 0)
        }

        let deploy = JobKind.deploy.rawValue
        func total(_ env: Int64, kind: String? = deploy, _ states: Set<String>, dispatched: Bool? = true) -> Int64 {
            totals.filter {
                $0.environment == env && (kind == nil || $0.kind == kind) && states.contains($0.state)
                    && (dispatched == nil || $0.dispatched == dispatched)
            }.reduce(0) { $0 + $1.count }
        }
        let results = ["succeeded", "failed", "timed_out", "cancelled"]
        out.family(
            "draven_deploys_completed_total", .counter,
            "Deploys that ended after their dispatch, by result (those that never started: draven_jobs)."
        )
        for env in envs {
            for result in results {
                out.sample(
                    "draven_deploys_completed_total", "\(labels[env]!),result=\"\(result)\"",
                    total(env, [result]))
            }
        }
        out.family(
            "draven_leases_expired_total", .counter,
            "Jobs timed out because their lease ran out (no heartbeat), any kind.")
        for env in envs {
            out.sample(
                "draven_leases_expired_total", labels[env]!, total(env, kind: nil, ["timed_out"], dispatched: nil))
        }

        func gauge(_ name: String, _ help: String, zeros: Bool, _ value: (JobMetrics.Open) -> Int64?, state: String) {
            out.family(name, .gauge, help)
            for env in envs {
                let o = open.first { $0.environment == env && $0.state == state }
                if let o, let v = value(o) {
                    out.sample(name, labels[env]!, v)
                } else if zeros {
                    out.sample(name, labels[env]!, 0)
                }
            }
        }
        gauge(
            "draven_queue_depth", "Jobs queued for the environment's lock.", zeros: true, { $0.count }, state: "queued")
        gauge(
            "draven_queue_oldest_age_seconds", "How long the oldest queued job has waited.", zeros: false,
            { $0.oldestAge }, state: "queued")
        gauge(
            "draven_approvals_waiting", "Jobs awaiting approval.", zeros: true, { $0.count }, state: "awaiting_approval"
        )
        gauge(
            "draven_approvals_oldest_age_seconds", "How long the oldest job awaiting approval has waited.",
            zeros: false, { $0.oldestAge }, state: "awaiting_approval")
        gauge(
            "draven_approvals_next_expiry_seconds",
            "Seconds until the first job awaiting approval expires (its policy's approval lifetime).", zeros: false,
            { $0.nextExpiry }, state: "awaiting_approval")
        gauge(
            "draven_runner_heartbeat_age_seconds",
            "The longest a running job has gone without a heartbeat (or since it started running).", zeros: false,
            { $0.silentFor }, state: "running")
        gauge(
            "draven_dispatch_age_seconds", "How long the oldest job in dispatching has been there.", zeros: false,
            { $0.oldestAge }, state: "dispatching")

        for (h, name, help) in [
            (JobMetrics.Histogram.deployDuration, "draven_deploy_duration_seconds", "Deploys from dispatch to end."),
            (.queueWait, "draven_queue_wait_seconds", "Time jobs waited for the lock before their dispatch."),
            (.lockHeld, "draven_lock_held_seconds", "Time jobs (any kind) held the environment's lock."),
            (.leadTime, "draven_dora_lead_time_seconds", "DORA lead time for changes: commit time to live."),
            (
                .restore, "draven_dora_time_to_restore_seconds",
                "DORA time to restore: a failed change to the success "
                    + "that ended it."
            ),
        ] {
            histogram(&out, name, help, h, rows.filter { $0.name == h.rawValue }, labels)
        }

        out.family(
            "draven_dora_deployments_total", .counter,
            "DORA deployment frequency: deploys that went live (rate() over the window).")
        for env in envs { out.sample("draven_dora_deployments_total", labels[env]!, total(env, ["succeeded"])) }
        out.family(
            "draven_dora_changes_total", .counter,
            "Dispatched deploys that reached an outcome (succeeded, failed, timed out): the change failure rate's base."
        )
        for env in envs {
            out.sample("draven_dora_changes_total", labels[env]!, total(env, ["succeeded", "failed", "timed_out"]))
        }
        for (counter, name, help) in [
            (
                JobMetrics.Counter.changesFailed, "draven_dora_changes_failed_total",
                "DORA failed changes: deploys that failed or timed out, and rollbacks or diagnostics of deploys that "
                    + "had not."
            ),
            (
                .restores, "draven_dora_rework_deployments_total",
                "DORA rework: releases (rollbacks, fixes forward) that restored an environment after a failed change."
            ),
        ] {
            out.family(name, .counter, help)
            for env in envs {
                let n = rows.first { $0.environment == env && $0.name == counter.rawValue }?.count ?? 0
                out.sample(name, labels[env]!, n)
            }
        }
    }

    /// A histogram per environment from its bucket rows (counts per bucket, made cumulative here).
    static func histogram(
        _ out: inout Exposition, _ name: String, _ help: String, _ h: JobMetrics.Histogram,
        _ rows: [(environment: Int64, name: String, le: Int64, count: Int64, sum: Int64)], _ labels: [Int64: String]
    ) {
        out.family(name, .histogram, help)
        var index = 0
        while index < rows.count {
            let env = rows[index].environment
            var counts: [Int64: Int64] = [:]
            var sum: Int64 = 0
            var total: Int64 = 0
            while index < rows.count, rows[index].environment == env {
                counts[rows[index].le, default: 0] += rows[index].count
                sum += rows[index].sum
                total += rows[index].count
                index += 1
            }
            let l = labels[env]!
            var cumulative: Int64 = 0
            for bound in h.bounds {
                cumulative += counts[bound] ?? 0
                out.sample(name + "_bucket", "\(l),le=\"\(bound)\"", cumulative)
            }
            out.sample(name + "_bucket", "\(l),le=\"+Inf\"", total)
            out.sample(name + "_sum", l, sum)
            out.sample(name + "_count", l, total)
        }
    }

    // MARK: - locks, webhooks, outbox, sweep

    typealias Refusals = [(what: String, provider: String, project: String, environment: Int64, count: Int64)]

    static func locks(
        _ db: Database, _ out: inout Exposition, _ envs: [Int64], _ labels: [Int64: String], _ refusals: Refusals,
        now: Int64
    ) throws {
        let rows = try Locks.gauges(db)
        let byEnv = Dictionary(rows.map { ($0.environment, $0) }, uniquingKeysWith: { a, _ in a })
        out.family("draven_locks_held", .gauge, "Whether the environment's lock is held (1) or free (0).")
        for env in envs { out.sample("draven_locks_held", labels[env]!, byEnv[env]?.held == true ? 1 : 0) }
        out.family(
            "draven_lock_lease_remaining_seconds", .gauge,
            "Seconds left on a held lock's lease (negative: it ran out and sweep has not timed the job out).")
        for env in envs {
            if let l = byEnv[env], l.held, let until = l.leaseUntil {
                out.sample("draven_lock_lease_remaining_seconds", labels[env]!, until - now)
            }
        }
        out.family(
            "draven_stale_fencing_tokens_refused_total", .counter,
            "Heartbeats, callbacks and log chunks refused (409) for a stale fencing token.")
        var stale: [Int64: Int64] = [:]
        for r in refusals where r.what == "stale-fencing-token" { stale[r.environment, default: 0] += r.count }
        for env in envs { out.sample("draven_stale_fencing_tokens_refused_total", labels[env]!, stale[env] ?? 0) }
    }

    static func webhooks(_ db: Database, _ out: inout Exposition, _ refusals: Refusals) throws {
        out.family(
            "draven_webhook_deliveries_total", .counter,
            "Provider webhooks by outcome: applied, stored (no job for the run yet), duplicate, ignored, refused.")
        var rows = try Deliveries.outcomeCounts(db)
        for r in refusals where r.what.hasPrefix("webhook-") {
            rows.append((r.provider, r.project, String(r.what.dropFirst("webhook-".count)), r.count))
        }
        for row in rows.sorted(by: { ($0.provider, $0.project, $0.outcome) < ($1.provider, $1.project, $1.outcome) }) {
            out.sample(
                "draven_webhook_deliveries_total",
                "provider=\"\(escape(row.provider))\",project=\"\(escape(row.project))\",outcome=\"\(row.outcome)\"",
                row.count)
        }
    }

    static func outbox(_ db: Database, _ out: inout Exposition) throws {
        let rows = try Outbox.counts(db)
        out.family("draven_outbox_rows", .gauge, "Outbox rows (outbound calls) by kind and state.")
        for r in rows { out.sample("draven_outbox_rows", "kind=\"\(escape(r.kind))\",state=\"\(r.state)\"", r.count) }
        out.family("draven_outbox_pending", .gauge, "Outbound calls not yet delivered (pending or delivering).")
        out.sample(
            "draven_outbox_pending", "",
            rows.filter { $0.state == "pending" || $0.state == "delivering" }
                .reduce(0) { $0 + $1.count })
        var retries: [String: Int64] = [:]
        var dead: [String: Int64] = [:]
        for r in rows {
            retries[r.kind, default: 0] += r.retries
            dead[r.kind, default: 0] += r.state == "dead" ? r.count : 0
        }
        out.family("draven_outbox_retries_total", .counter, "Delivery attempts after each row's first, by kind.")
        for (kind, n) in retries.sorted(by: { $0.key < $1.key }) {
            out.sample("draven_outbox_retries_total", "kind=\"\(escape(kind))\"", n)
        }
        out.family("draven_outbox_dead_total", .counter, "Outbox rows given up on (dead), by kind.")
        for (kind, n) in dead.sorted(by: { $0.key < $1.key }) {
            out.sample("draven_outbox_dead_total", "kind=\"\(escape(kind))\"", n)
        }
    }

    static func sweep(_ db: Database, _ out: inout Exposition) throws {
        let row = try SweepPasses.totals(db)
        out.family("draven_sweep_passes_total", .counter, "Passes of draven sweep.")
        out.sample("draven_sweep_passes_total", "", row?.passes ?? 0)
        out.family("draven_sweep_pass_seconds_total", .counter, "Time spent in draven sweep passes.")
        out.sample("draven_sweep_pass_seconds_total", "", seconds(row?.micros ?? 0))
        guard let row else { return }
        out.family("draven_sweep_last_pass_timestamp_seconds", .gauge, "When the latest sweep pass ended (Unix time).")
        out.sample("draven_sweep_last_pass_timestamp_seconds", "", row.lastAt)
        out.family("draven_sweep_last_pass_seconds", .gauge, "How long the latest sweep pass took.")
        out.sample("draven_sweep_last_pass_seconds", "", seconds(row.lastMicros))
    }

    /// Microseconds as seconds with six decimals.
    static func seconds(_ micros: Int64) -> String {
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    // MARK: - plans

    /// Deploy plans: runs active, runs completed by result, steps failed by cause, and the
    /// durations of runs and of steps (`PlanRuns`).
    static func plans(_ db: Database) throws -> String {
        let counts = try PlanRuns.statusCounts(db)
        let active = counts.filter { PlanRuns.Status(rawValue: $0.status).map { !$0.isEnded } ?? false }
        var out = gauge(
            "draven_plan_runs_active", "Plan runs running, paused or compensating.", active.reduce(0) { $0 + $1.count })
        out += "# HELP draven_plan_runs_completed_total Plan runs that ended, by result.\n"
        out += "# TYPE draven_plan_runs_completed_total counter\n"
        for status in PlanRuns.Status.allCases where status.isEnded {
            let n = counts.first { $0.status == status.rawValue }?.count ?? 0
            out += "draven_plan_runs_completed_total{result=\"\(status.rawValue)\"} \(n)\n"
        }
        out += "# HELP draven_plan_step_failures_total Plan steps whose last attempt failed, by cause.\n"
        out += "# TYPE draven_plan_step_failures_total counter\n"
        for (cause, n) in try PlanRuns.failureCounts(db) {
            out += "draven_plan_step_failures_total{cause=\"\(cause)\"} \(n)\n"
        }
        let bounds: [Int64] = [10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400]
        for (name, steps, help) in [
            ("draven_plan_run_duration_seconds", false, "Durations of plan runs that ended."),
            ("draven_plan_step_duration_seconds", true, "Durations of plan steps that succeeded (last attempt)."),
        ] {
            let h = try PlanRuns.durations(db, steps: steps, bounds: bounds)
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (bound, n) in zip(bounds, h.buckets) { out += "\(name)_bucket{le=\"\(bound)\"} \(n)\n" }
            out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
        }
        return out
    }

    static func gauge(_ name: String, _ help: String, _ value: Int64) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(value)\n"
    }

    /// A label value as the text format wants it: backslash, double quote and line feed escaped.
    static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else { return value }
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// The text being written: a family's `# HELP`/`# TYPE` lines, then its samples.
    struct Exposition {
        enum Kind: String { case gauge, counter, histogram }
        var text = ""

        mutating func family(_ name: String, _ kind: Kind, _ help: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
        }

        mutating func sample(_ name: String, _ labels: String, _ value: Int64) {
            sample(name, labels, String(value))
        }

        mutating func sample(_ name: String, _ labels: String, _ value: String) {
            text += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n"
        }
    }
}
