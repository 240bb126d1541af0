/// Prometheus text exposition (format 0.0.4) of the store's gauges. Owns no table: each count
/// comes from the type that owns its table (`Job`, `Locks`, `Outbox`, `Audit`).
package enum Metrics {
    package static func render(_ db: Database) throws -> String {
        var out = "# HELP draven_jobs Jobs by kind and state.\n# TYPE draven_jobs gauge\n"
        var seen = Set<String>()
        for (kind, state, n) in try Job.countsByKindAndState(db) {
            out += "draven_jobs{kind=\"\(kind)\",state=\"\(state)\"} \(n)\n"
            seen.insert(kind + "/" + state)
        }
        for state in JobState.allCases where !seen.contains("deploy/" + state.rawValue) {
            out += "draven_jobs{kind=\"deploy\",state=\"\(state.rawValue)\"} 0\n"
        }
        let held = try Locks.heldCount(db)
        out +=
            "# HELP draven_locks_held Environment locks currently held.\n# TYPE draven_locks_held "
            + "gauge\ndraven_locks_held \(held)\n"
        let pending = try Outbox.pendingCount(db)
        out +=
            "# HELP draven_outbox_pending Outbound calls not yet delivered.\n# TYPE draven_outbox_pending "
            + "gauge\ndraven_outbox_pending \(pending)\n"
        let audit = try Audit.count(db)
        out +=
            "# HELP draven_audit_records Records in the audit trail.\n# TYPE draven_audit_records "
            + "gauge\ndraven_audit_records \(audit)\n"
        return out
    }
}
