/// Reads the `jobs` table: a job row with its project and environment names, decoded through
/// the column list kept next to its SELECT (`columns`). Its writes are the state machine's.
package struct Job: Sendable {
    package var id: Int64
    package var kind: JobKind
    package var projectID: Int64
    package var project: String
    package var environmentID: Int64
    package var environment: String
    package var ref: String
    package var refKind: String
    package var sha: String?
    package var reason: String
    package var state: JobState
    package var requestedBy: String
    package var requestedByID: Int64
    package var policyVersion: Int64
    package var fencingToken: Int64?
    package var runID: String?
    package var parentJobID: Int64?
    package var createdAt: Int64
    package var updatedAt: Int64
    package var logURL: String?
    package var heartbeatAt: Int64?
    /// The runner's last progress (JSON text), from its heartbeats.
    package var progress: String?
    package var toRelease: Int64?
    /// The provider's page of the run (the notifications' link when there is no log).
    package var runURL: String?
    /// The W3C trace context of the request that asked for the job (`TraceContext`), if it sent one.
    package var traceparent: String?

    /// The columns `init(row:)` reads, in SELECT order; `select` is built from them.
    enum Column: Int32, ColumnList {
        case id, kind, projectID, project, environmentID, environment, ref, refKind, sha, reason, state, requestedBy
        case requestedByID, policyVersion, fencingToken, runID, parentJobID, createdAt, updatedAt, logURL
        case heartbeatAt, progress, toRelease, runURL, traceparent

        var expression: String {
            switch self {
            case .id: "j.id"
            case .kind: "j.kind"
            case .projectID: "j.project_id"
            case .project: "p.name"
            case .environmentID: "j.environment_id"
            case .environment: "e.name"
            case .ref: "j.ref"
            case .refKind: "j.ref_kind"
            case .sha: "j.sha"
            case .reason: "j.reason"
            case .state: "j.state"
            case .requestedBy: "pe.handle"
            case .requestedByID: "j.requested_by"
            case .policyVersion: "j.policy_version"
            case .fencingToken: "j.fencing_token"
            case .runID: "j.run_id"
            case .parentJobID: "j.parent_job_id"
            case .createdAt: "j.created_at"
            case .updatedAt: "j.updated_at"
            case .logURL: "j.log_url"
            case .heartbeatAt: "j.heartbeat_at"
            case .progress: "j.progress"
            case .toRelease: "j.to_release"
            case .runURL: "j.run_url"
            case .traceparent: "j.traceparent"
            }
        }
    }

    static let select =
        "SELECT " + Column.sql + """

            FROM jobs j JOIN projects p ON p.id = j.project_id JOIN environments e ON e.id = j.environment_id
            JOIN people pe ON pe.id = j.requested_by
            """

    init(row statement: Statement) {
        let row = Row<Column>(statement)
        id = row.int(.id)
        kind = JobKind(rawValue: row.text(.kind)) ?? .deploy
        projectID = row.int(.projectID)
        project = row.text(.project)
        environmentID = row.int(.environmentID)
        environment = row.text(.environment)
        ref = row.text(.ref)
        refKind = row.text(.refKind)
        sha = row.optionalText(.sha)
        reason = row.text(.reason)
        state = JobState(rawValue: row.text(.state)) ?? .failed
        requestedBy = row.text(.requestedBy)
        requestedByID = row.int(.requestedByID)
        policyVersion = row.int(.policyVersion)
        fencingToken = row.optionalInt(.fencingToken)
        runID = row.optionalText(.runID)
        parentJobID = row.optionalInt(.parentJobID)
        createdAt = row.int(.createdAt)
        updatedAt = row.int(.updatedAt)
        logURL = row.optionalText(.logURL)
        heartbeatAt = row.optionalInt(.heartbeatAt)
        progress = row.optionalText(.progress)
        toRelease = row.optionalInt(.toRelease)
        runURL = row.optionalText(.runURL)
        traceparent = row.optionalText(.traceparent)
    }

    package static func find(_ db: Database, id: Int64) throws -> Job? {
        try db.first(select + " WHERE j.id = ?1", [.int(id)], Job.init(row:))
    }

    /// - Throws: `DravenError.notFound` when there is no such job.
    package static func require(_ db: Database, id: Int64) throws -> Job {
        guard let job = try find(db, id: id) else { throw unknown(id) }
        return job
    }

    /// What a caller is told about a job id that names no job (or one they may not read).
    package static func unknown(_ id: Int64) -> DravenError { .notFound(what: "no job \(id)") }

    /// The most recent jobs, newest first, optionally filtered.
    package static func list(_ db: Database, project: String?, environment: String?, state: String?, limit: Int) throws
        -> [Job]
    {
        try db.query(
            select + """
                 WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR e.name = ?2) AND (?3 IS NULL OR j.state = ?3)
                 ORDER BY j.id DESC LIMIT ?4
                """, [.text(project), .text(environment), .text(state), .int(Int64(limit))], Job.init(row:))
    }

    /// The order queued jobs of an environment start in (`StateMachine.startNextQueued`): rollback
    /// and diagnostic jobs first (they repair what a failed deploy left), then the oldest.
    /// Written over the alias `j`.
    static let queueOrder = "j.kind = 'deploy', j.id"

    /// The queued jobs of an environment, in the order they will start (`queueOrder`).
    package static func queued(_ db: Database, environment: Int64) throws -> [Job] {
        try db.query(
            select + " WHERE j.environment_id = ?1 AND j.state = 'queued' ORDER BY " + queueOrder,
            [.int(environment)], Job.init(row:))
    }

    /// The jobs started from job `id` (its diagnostic and rollback jobs), oldest first.
    package static func children(_ db: Database, of id: Int64) throws -> [Job] {
        try db.query(select + " WHERE j.parent_job_id = ?1 ORDER BY j.id", [.int(id)], Job.init(row:))
    }

    /// The jobs with the given ids (those that exist), newest first, in one query.
    package static func many(_ db: Database, ids: [Int64]) throws -> [Job] {
        guard !ids.isEmpty else { return [] }
        return try db.query(
            select + " WHERE j.id IN (SELECT value FROM json_each(?1)) ORDER BY j.id DESC",
            [.text(JSON.array(ids.map(JSON.int)).serialized())], Job.init(row:))
    }

    /// Every job awaiting approval, newest first (on the `jobs_state` index).
    package static func awaitingApproval(_ db: Database) throws -> [Job] {
        try db.query(select + " WHERE j.state = 'awaiting_approval' ORDER BY j.id DESC", [], Job.init(row:))
    }

    /// A job's state alone (one indexed read), or nil when there is no such job.
    package static func state(_ db: Database, id: Int64) throws -> JobState? {
        try db.first("SELECT state FROM jobs WHERE id = ?1", [.int(id)]) { JobState(rawValue: $0.text(0)) } ?? nil
    }

    /// Whether a rollback or diagnostic of `parent` other than `besides` has been dispatched (took
    /// the lock, so it holds a fencing token).
    package static func remedyDispatched(_ db: Database, parent: Int64, besides: Int64) throws -> Bool {
        try db.first(
            """
            SELECT 1 FROM jobs WHERE parent_job_id = ?1 AND id != ?2 AND kind IN ('rollback', 'diagnostic')
            AND fencing_token IS NOT NULL
            """, [.int(parent), .int(besides)]
        ) { _ in true } ?? false
    }

    /// Where a job's run can be read: the runner's log URL, else the provider's run URL.
    package static func link(_ db: Database, id: Int64) throws -> String? {
        try db.first("SELECT coalesce(log_url, run_url) FROM jobs WHERE id = ?1", [.int(id)]) {
            $0.optionalText(0)
        } ?? nil
    }

    /// The name of a job's project (whose runner secret signs its heartbeats), or nil when
    /// there is no such job.
    package static func projectName(_ db: Database, id: Int64) throws -> String? {
        try db.first("SELECT p.name FROM jobs j JOIN projects p ON p.id = j.project_id WHERE j.id = ?1", [.int(id)]) {
            $0.text(0)
        }
    }

    /// The job a person already asked for with `key` (`Idempotency-Key`), with the digest of
    /// that request.
    package static func idempotent(_ db: Database, requestedBy person: Int64, key: String) throws
        -> (id: Int64, requestDigest: String)?
    {
        try db.first(
            "SELECT id, request_digest FROM jobs WHERE requested_by = ?1 AND idempotency_key = ?2",
            [.int(person), .text(key)]
        ) { (id: $0.int(0), requestDigest: $0.text(1)) }
    }

    /// The newest job of `projectID` whose provider run is `runID`.
    package static func latest(_ db: Database, projectID: Int64, runID: String) throws -> Int64? {
        try db.scalar(
            "SELECT id FROM jobs WHERE run_id = ?1 AND project_id = ?2 ORDER BY id DESC LIMIT 1",
            [.text(runID), .int(projectID)])
    }

    /// The newest job of `projectID` whose run URL ends with `suffix` (a Bitbucket build number).
    package static func latest(_ db: Database, projectID: Int64, runURLEnding suffix: String) throws -> Int64? {
        try db.scalar(
            "SELECT id FROM jobs WHERE project_id = ?1 AND run_url LIKE ?2 ORDER BY id DESC LIMIT 1",
            [.int(projectID), .text("%" + suffix)])
    }

    /// Whether job `id` exists and belongs to `projectID`.
    package static func exists(_ db: Database, id: Int64, projectID: Int64) throws -> Bool {
        try db.scalar("SELECT id FROM jobs WHERE id = ?1 AND project_id = ?2", [.int(id), .int(projectID)]) != nil
    }

    /// `dispatching` jobs last changed at or before `updatedBefore` with no dispatch row left to
    /// deliver (all of them, or only `job`), oldest first: what sweep fails as stuck.
    package static func stuckDispatching(_ db: Database, job: Int64? = nil, updatedBefore: Int64) throws -> [Int64] {
        try db.query(
            """
            SELECT j.id FROM jobs j WHERE (?1 IS NULL OR j.id = ?1) AND j.state = 'dispatching' AND j.updated_at <= ?2
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id AND o.kind = 'dispatch'
                            AND o.state IN ('pending', 'delivering'))
            ORDER BY j.id
            """, [.int(job), .int(updatedBefore)]
        ) { $0.int(0) }
    }

    /// A running job's run and its project's integration, as sweep's polling reads them.
    package struct SilentRun {
        package var id: Int64
        package var runID: String
        package var provider: String
        package var method: String
        package var integration: String
    }

    /// Running jobs (all, or only `job`) with a known run and no word from the provider since
    /// `silentSince`, no poll pending, and whose dead polls since the provider last spoke have
    /// backed off: the next is due min(`backoffLimit`, `pollAfter` · 2ⁿ) after the last.
    package static func silentRuns(
        _ db: Database, job: Int64? = nil, silentSince: Int64, pollAfter: Int64,
        backoffLimit: Int64, now: Int64
    ) throws -> [SilentRun] {
        try db.query(
            """
            SELECT j.id, j.run_id, i.provider, i.method, i.document
            FROM jobs j JOIN integrations i ON i.project_id = j.project_id
            WHERE (?1 IS NULL OR j.id = ?1) AND j.state = 'running' AND j.run_id IS NOT NULL
            AND coalesce(j.provider_seen_at, j.updated_at) <= ?2
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id AND o.kind = 'poll'
                            AND o.state IN ('pending', 'delivering'))
            AND coalesce((SELECT max(o.delivered_at) + min(?4, ?3 << min(count(*), 20)) FROM outbox o
                          WHERE o.job_id = j.id AND o.kind = 'poll' AND o.state = 'dead'
                          AND o.delivered_at > coalesce(j.provider_seen_at, 0)), 0) <= ?5
            ORDER BY j.id
            """, [.int(job), .int(silentSince), .int(pollAfter), .int(backoffLimit), .int(now)]
        ) {
            SilentRun(
                id: $0.int(0), runID: $0.text(1), provider: $0.text(2), method: $0.text(3),
                integration: $0.text(4))
        }
    }

    /// How many jobs there are of each (kind, state) present, ordered by kind then state (`/metrics`).
    package static func countsByKindAndState(_ db: Database) throws -> [(kind: String, state: String, count: Int64)] {
        try db.query("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state") {
            (kind: $0.text(0), state: $0.text(1), count: $0.int(2))
        }
    }

    /// When the first deploy of `environment` that failed or timed out after job `after` held its lock
    /// ended (all of them when nil): where a failed change began (`Transition.CountMetrics`). The lock's
    /// fencing tokens order an environment's dispatched jobs (one holds it at a time, each takes the next
    /// token), where times of the same second could not; an ended job's `updated_at` is its end.
    static func firstFailure(_ db: Database, environment: Int64, after job: Int64?) throws -> Int64? {
        try db.scalar(
            """
            SELECT min(updated_at) FROM jobs WHERE environment_id = ?1 AND kind = 'deploy'
            AND state IN ('failed', 'timed_out')
            AND fencing_token > coalesce((SELECT fencing_token FROM jobs WHERE id = ?2), 0)
            """, [.int(environment), .int(job)])
    }

    package var json: JSONObject {
        var o: JSONObject = [
            "id": .int(id), "kind": .string(kind.rawValue), "project": .string(project),
            "environment": .string(environment),
            "ref": .string(ref), "ref_kind": .string(refKind), "sha": sha.map(JSON.string) ?? .null,
            "reason": .string(reason), "state": .string(state.rawValue), "requested_by": .string(requestedBy),
            "policy_version": .int(policyVersion), "fencing_token": fencingToken.map(JSON.int) ?? .null,
            "run_id": runID.map(JSON.string) ?? .null,
            "created_at": .string(Clock.rfc3339(createdAt)), "updated_at": .string(Clock.rfc3339(updatedAt)),
        ]
        if let parentJobID { o["parent_job_id"] = .int(parentJobID) }
        if let toRelease { o["to_release"] = .int(toRelease) }
        if let logURL { o["log_url"] = .string(logURL) }
        if let heartbeatAt { o["heartbeat_at"] = .string(Clock.rfc3339(heartbeatAt)) }
        if let progress, let value = try? JSON.parse(progress) { o["progress"] = value }
        o["links"] = .object(["self": .string("/api/v1/jobs/\(id)")])
        return o
    }
}

/// One entry of a job's history.
package struct JobEvent: Sendable {
    package var id: Int64
    package var at: Int64
    package var event: String
    package var from: String?
    package var to: String?
    package var actor: String
    package var detail: String

    package static func list(_ db: Database, job: Int64) throws -> [JobEvent] {
        try db.query(
            "SELECT id, at, event, from_state, to_state, actor, detail FROM job_events WHERE job_id = ?1 ORDER BY id",
            [.int(job)]
        ) {
            JobEvent(
                id: $0.int(0), at: $0.int(1), event: $0.text(2), from: $0.optionalText(3), to: $0.optionalText(4),
                actor: $0.text(5), detail: $0.text(6))
        }
    }

    /// When job `job` last moved into `state`, if it ever did (on the `job_events_job` index).
    static func enteredAt(_ db: Database, job: Int64, state: JobState) throws -> Int64? {
        try db.scalar(
            "SELECT max(at) FROM job_events WHERE job_id = ?1 AND event = 'transition' AND to_state = ?2",
            [.int(job), .text(state.rawValue)])
    }

    package var json: JSON {
        .object([
            "id": .int(id), "at": .string(Clock.rfc3339(at)), "event": .string(event),
            "from": from.map(JSON.string) ?? .null, "to": to.map(JSON.string) ?? .null, "actor": .string(actor),
            "detail": (try? JSON.parse(detail)) ?? .object([:]),
        ])
    }
}
