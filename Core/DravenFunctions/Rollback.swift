package import DravenCore

/// `POST /api/v1/rollbacks` `{"project", "environment", "to_release"?, "reason"?}` — roll an
/// environment back to the release before the live one, or to a named release of its history
/// (`to_release`: a release's id, its job's `release_id`, ref or sha); `POST
/// /api/v1/jobs/{id}/rollback` `{"reason"?}` — undo job `id`: back to the release that was live
/// before it (before its release if it succeeded; the live one if it failed);
/// `POST /api/v1/jobs/{id}/cancel` `{"reason"?}` — cancel a job that has not ended, and ask the
/// provider to cancel its run (through the outbox, after the answer).
///
/// Rollbacks need a `rollback` grant on the environment; cancels the grant that starts a job of
/// that kind (`deploy` for a deploy, `rollback` for a rollback or diagnostic job). A
/// rollback job takes the lock before any queued deploy; it needs approvals only when the
/// policy says `rollback_approvals = true`; a busy environment whose policy is `reject` answers
/// 409. Answers: 201 with the rollback job, 200 with the cancelled job. Refusals (401, 403, 404,
/// 409 nothing to roll back to or job already ended, 422) change nothing but the audit trail.
package enum Rollback: RoutedFunction {
    package static let name = "rollback"
    package static let maxBodyBytes = 16 * 1024

    package static let router = Router<RouteHandler>([
        (Route("POST", "/api/v1/rollbacks"), environment),
        (Route("POST", "/api/v1/jobs/{id}/rollback"), job),
        (Route("POST", "/api/v1/jobs/{id}/cancel"), cancel),
    ])

    static func environment(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let input = try BodyFields(
            try request.jsonBody(), fields: ["project", "environment", "to_release", "reason"], of: "a rollback")
        let project = try input.string("project", required: true, max: 64)!
        let environment = try input.string("environment", required: true, max: 64)!
        let named = try input.string("to_release", required: false, max: 255, numbers: true)
        let reason = try input.string("reason", required: false, max: 1000)
        let id = try rollBack(
            project: project, environment: environment, to: named, by: principal, reason: reason, context)
        return try created(id, context)
    }

    static func job(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let input = try BodyFields(try request.optionalJSONBody(), fields: ["reason"], of: "this request")
        let reason = try input.string("reason", required: false, max: 1000)
        return try created(try rollBack(job: id, by: principal, reason: reason, context), context)
    }

    static func cancel(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let input = try BodyFields(try request.optionalJSONBody(), fields: ["reason"], of: "this request")
        let reason = try input.string("reason", required: false, max: 1000) ?? ""
        try cancel(job: id, by: principal, reason: reason, context)
        return Response(status: 200, json: .object(try Job.require(try context.db(), id: id).json))
    }

    static func created(_ id: Int64, _ context: Context) throws -> Response {
        Response(
            status: 201, json: .object(try Job.require(try context.db(), id: id).json),
            headers: [("Location", "/api/v1/jobs/\(id)")])
    }

    // MARK: - what the API and the console both do

    /// Rolls an environment back to the release `named` (a release's id, its job's `release_id`,
    /// ref or sha), or to the one before the live release. Returns the rollback job's id.
    static func rollBack(
        project: String, environment: String, to named: String?, by principal: Principal, reason: String?,
        _ context: Context
    ) throws -> Int64 {
        context.subject = "\(project)/\(environment)"
        return try context.db().immediate { tx in
            try Rollbacks.rollBack(
                tx, project: project, environment: environment, to: .named(named), by: principal, reason: reason,
                now: context.now)
        }
    }

    /// Undoes job `id`: back to the release live before it. Returns the rollback job's id.
    static func rollBack(job id: Int64, by principal: Principal, reason: String?, _ context: Context) throws -> Int64 {
        let db = try context.db()
        let job = try Job.require(db, id: id)
        let release = try JobControl.rollbackTarget(db, principal, job: job)
        return try create(
            db, like: job, to: release, parent: id, principal: principal,
            reason: reason ?? "manual rollback of job \(id) to release \(release.id)", context: context)
    }

    static func create(
        _ db: Database, like job: Job, to release: Releases.Release, parent: Int64?, principal: Principal,
        reason: String, context: Context
    ) throws -> Int64 {
        try db.immediate { tx in
            try Recovery.rollback(
                tx, like: job, to: release, policy: try Policy.load(tx.db, environmentID: job.environmentID),
                parent: parent, requestedBy: principal.personID, reason: reason, actor: principal.handle,
                queueWhenBusy: false, now: context.now)
        }
    }

    /// Cancels job `id`, asking the provider to stop its run (through the outbox, after the answer).
    static func cancel(job id: Int64, by principal: Principal, reason: String, _ context: Context) throws {
        let db = try context.db()
        let job = try Job.require(db, id: id)
        // Who may start a job of this kind may stop it: deploys need `deploy`, rollbacks and diagnostics `rollback`.
        try JobControl.checkCancel(db, principal, job: job)
        try db.immediate { tx in
            try JobControl.cancel(
                tx, job: id, actor: principal.handle,
                detail: ["by": .string(principal.handle), "reason": .string(reason)], now: context.now)
        }
    }
}
