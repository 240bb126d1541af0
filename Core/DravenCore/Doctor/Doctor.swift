/// `draven doctor`: the store's invariants, checked on any store (a live one, a copy, one left by a
/// crash). Each check is asked of the type that owns its table — the store itself (integrity and
/// foreign keys), `Locks`, the job history (`JobEvent` against `StateMachine`'s table), `Outbox`
/// and the audit trail — and names what it finds; nothing here writes.
package enum Doctor {
    /// Something wrong with the store: which check found it, what it is about, and why.
    package struct Finding: Sendable, Equatable, CustomStringConvertible {
        package var check: Check
        package var subject: String
        package var message: String

        package init(_ check: Check, _ subject: String, _ message: String) {
            self.check = check
            self.subject = subject
            self.message = message
        }

        package var description: String { "\(check.rawValue): \(subject): \(message)" }
        package var json: JSON {
            .object(["check": .string(check.rawValue), "subject": .string(subject), "message": .string(message)])
        }
    }

    package enum Check: String, Sendable, CaseIterable {
        /// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.
        case integrity
        /// One holder per environment, a job that has not ended, holding it with its fencing token.
        case locks
        /// Every job's history is a path through the state machine ending in the job's state.
        case events
        /// No outbox row lost: delivered, dead with a reason, or still due; each dispatch has its row.
        case outbox
        /// The audit trail's chain verifies.
        case audit
    }

    package struct Report: Sendable {
        /// What each check that ran found, at most `limit` findings each.
        package var findings: [Check: [Finding]] = [:]
        /// Findings beyond the limit, per check.
        package var more: [Check: Int] = [:]
        package var healthy: Bool { findings.values.allSatisfy(\.isEmpty) }
        package var all: [Finding] { Check.allCases.flatMap { findings[$0] ?? [] } }

        package init() {}
        /// A store the checks cannot start on (unreadable, or not migrated): that one finding.
        package init(only finding: Finding) { findings[finding.check] = [finding] }
    }

    /// Pending or delivering outbox rows due further away than this are counted as lost: the
    /// longest backoff is 10 min and a claim lasts 3 min.
    package static let dueWithin: Int64 = 86_400

    /// Runs every check inside one read transaction (one snapshot, even of a store in use).
    /// `checkpoints`: where the signed audit checkpoints are (`draven audit verify`'s check); nil
    /// checks only the chain (a bare copy of a store, the unit tests).
    package static func check(
        _ db: Database, now: Int64, checkpoints: CheckpointPaths? = nil,
        limit: Int = 100
    ) -> Report {
        var report = Report()
        let snapshot = (try? db.execute("BEGIN")) != nil
        defer { if snapshot { try? db.execute("COMMIT") } }
        for check in Check.allCases {
            let found: [Finding]
            do {
                found = try run(check, db, now: now, checkpoints: checkpoints)
            } catch {
                found = [Finding(check, "store", "the check could not run: \(error)")]
            }
            report.findings[check] = Array(found.prefix(limit))
            if found.count > limit { report.more[check] = found.count - limit }
        }
        return report
    }

    static func run(_ check: Check, _ db: Database, now: Int64, checkpoints: CheckpointPaths?) throws -> [Finding] {
        switch check {
        case .integrity: try db.integrityProblems().map { Finding(.integrity, "store", $0) }
        case .locks: try Locks.problems(db).map { Finding(.locks, $0.subject, $0.message) }
        case .events: try historyProblems(db).map { Finding(.events, "job/\($0.job)", $0.message) }
        case .outbox:
            try Outbox.problems(db, now: now, dueWithin: dueWithin).map { Finding(.outbox, $0.subject, $0.message) }
        case .audit: try auditChain(db, checkpoints: checkpoints)
        }
    }

    /// The audit trail's verification: the same code `draven audit verify` runs. Kept in this one
    /// place so the doctor follows whatever that verification becomes.
    static func auditChain(_ db: Database, checkpoints: CheckpointPaths?) throws -> [Finding] {
        guard let checkpoints else {
            guard let bad = try Audit.verify(db) else { return [] }
            let why = "the chain breaks at record \(bad): it or one before it was changed, removed or reordered"
            return [Finding(.audit, "audit/\(bad)", why)]
        }
        return try AuditVerifier.verify(db: db, checkpoints: checkpoints).map {
            Finding(.audit, $0.recordID.map { "audit/\($0)" } ?? "audit", $0.description)
        }
    }

    /// Every job's recorded history checked against the state machine, job by job.
    static func historyProblems(_ db: Database) throws -> [(job: Int64, message: String)] {
        var problems: [(job: Int64, message: String)] = []
        var path = StateMachine.History()
        var current: (id: Int64, state: String)?
        func finish() {
            guard let job = current else { return }
            if let why = path.end(state: job.state) { problems.append((job.id, why)) }
        }
        try JobEvent.eachStateEvent(db) { job, state, event in
            if current?.id != job {
                finish()
                current = (job, state)
                path = StateMachine.History()
            }
            if let event, let why = path.add(event: event.event, from: event.from, to: event.to) {
                problems.append((job, why))
            }
        }
        finish()
        return problems
    }
}
