/// Prometheus text exposition (format 0.0.4) of the store's gauges. Owns no table: each count
/// comes from the type that owns its table (`Job`, `Locks`, `Outbox`, `Audit`, `PlanRuns`).
package enum Metrics {
    package static func render(_ db: Database) throws -> String {
        var out = header("draven_jobs", "Jobs by kind and state.")
        var seen = Set<String>()
        for (kind, state, n) in try Job.countsByKindAndState(db) {
            out += "draven_jobs{kind=\"\(kind)\",state=\"\(state)\"} \(n)\n"
            seen.insert(kind + "/" + state)
        }
        let deploy = JobKind.deploy.rawValue
        for state in JobState.allCases where !seen.contains(deploy + "/" + state.rawValue) {
            out += "draven_jobs{kind=\"\(deploy)\",state=\"\(state.rawValue)\"} 0\n"
        }
        out += gauge("draven_locks_held", "Environment locks currently held.", try Locks.heldCount(db))
        out += gauge("draven_outbox_pending", "Outbound calls not yet delivered.", try Outbox.pendingCount(db))
        out += gauge("draven_audit_records", "Records in the audit trail.", try Audit.count(db))
        out += try plans(db)
        return out
    }

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

    static func header(_ name: String, _ help: String) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
    }

    static func gauge(_ name: String, _ help: String, _ value: Int64) -> String {
        header(name, help) + "\(name) \(value)\n"
    }
}
