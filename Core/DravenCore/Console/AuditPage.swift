/// A page of the audit trail, newest first, filtered by person (the actor), project and action
/// and paged by id, with the chain's verification status.
///
/// **Who sees what.** A record about a project's environment — its subject names the
/// environment (`<project>/<environment>`) or a job there (`job/<id>`) — is shown to people who
/// hold `read` on that environment, and to nobody else (not even its actor, once their grant is
/// gone). A record about no environment that exists (configuration, tokens, secrets, a request
/// refused for naming nothing real) is shown only to its actor. So a person without a read
/// grant on a project sees nothing of it. Operators read the whole trail with `draven audit
/// export`. (A project named like a store-wide subject's prefix — `job`, `config`, `token`,
/// `secrets` — would have such records read as its own; configuration does not forbid it.)
///
/// **Cost.** A page reads at most `window` records (newest first from `before`): a filter that
/// matches few of them gives a short page whose `next` continues below what was read, so no
/// page walks the whole trail. The verification is `AuditVerifier.report` with
/// `sinceCheckpoint`: it reads the latest signed checkpoint and walks only the records after
/// it (one BLAKE2b each; `draven sweep` writes checkpoints), checking that the record at the
/// checkpoint's head still has the signed hash. Without a checkpoint it walks the whole chain:
/// O(n). Nothing is cached. `.full` is the whole check (`draven audit verify`): O(n) always.
package struct AuditPage: Sendable {
    package struct Filter: Sendable {
        /// The actor's handle (or name: `draven sweep`, `runner`, …).
        package var person: String?
        package var project: String?
        /// An action (`approval.approve`), or a family ending with `.` (`job.`).
        package var action: String?
        /// Only records older than this id (the previous page's `next`).
        package var before: Int64?
        package var limit: Int

        package init(
            person: String? = nil, project: String? = nil, action: String? = nil, before: Int64? = nil,
            limit: Int = 50
        ) {
            self.person = person
            self.project = project
            self.action = action
            self.before = before
            self.limit = limit
        }
    }

    /// How much of the chain to verify for the page.
    package enum Verify: Sendable {
        /// The records after the latest checkpoint (see the cost above).
        case sinceCheckpoint
        /// The whole chain.
        case full
        /// No verification (`verification` is nil).
        case skip
    }

    /// The chain's state as the page shows it.
    package struct Verification: Sendable {
        /// No finding.
        package var intact: Bool
        package var findings: [AuditFinding]
        /// Records in the chain (the checkpoint's count plus those after it).
        package var records: Int64
        package var checkpoint: AuditCheckpoint?
        /// Records after the checkpoint, not yet covered by a signature.
        package var uncovered: Int64
        /// Whether the whole chain was walked (else only since the checkpoint).
        package var full: Bool
    }

    package var records: [Audit.Record]
    /// The `before` of the next (older) page; nil when the trail's start was reached.
    package var next: Int64?
    /// How many records were read to make this page (at most `window`).
    package var read: Int
    package var verification: Verification?

    /// - Parameters:
    ///   - checkpoints: where the checkpoint log and its public key are (`CheckpointPaths(paths)`).
    ///   - window: at most this many records are read for one page.
    package static func load(
        _ db: Database, viewer: Principal, filter: Filter, checkpoints: CheckpointPaths,
        verify: Verify = .sinceCheckpoint, window: Int = 2000
    ) throws -> AuditPage {
        let limit = max(1, min(filter.limit, 500))
        let query = Audit.Query(
            before: filter.before, actor: filter.person, action: filter.action, project: filter.project, limit: limit,
            window: max(window, 1), readerHandle: viewer.handle,
            readableEnvironments: Set(
                try Grants.environments(db, person: viewer.personID, action: .read, retired: true).map(\.id)))
        let (records, read, lowest) = try Audit.page(db, query)
        // A full page continues below its last record; a short one below what the window read.
        let next = records.count == limit ? records.last?.id : (read == query.window ? lowest : nil)
        var verification: Verification?
        if verify != .skip {
            let full = verify == .full
            let report = try AuditVerifier.report(db: db, checkpoints: checkpoints, sinceCheckpoint: !full)
            verification = Verification(
                intact: report.findings.isEmpty, findings: report.findings, records: report.records,
                checkpoint: report.checkpoint, uncovered: report.uncovered, full: full || report.checkpoint == nil)
        }
        return AuditPage(records: records, next: next, read: read, verification: verification)
    }
}
