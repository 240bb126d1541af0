/// Prometheus text exposition (format 0.0.4) of the store's gauges. Owns no table: each count
/// comes from the type that owns its table (`Job`, `Locks`, `Outbox`, `Audit`).
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
        return out
    }

    static func header(_ name: String, _ help: String) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
    }

    static func gauge(_ name: String, _ help: String, _ value: Int64) -> String {
        header(name, help) + "\(name) \(value)\n"
    }
}
