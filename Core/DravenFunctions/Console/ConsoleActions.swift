package import DravenCore

/// The console's actions, each a form post through the code its API twin runs: a vote
/// (`Approve.cast`, as `POST /api/v1/jobs/{id}/approvals` with `via: console`), a cancel and the
/// rollbacks (`Rollback.cancel`, `Rollback.rollBack`, as `POST /api/v1/jobs/{id}/cancel`,
/// `/jobs/{id}/rollback` and `/rollbacks`). Every audit record they write says
/// `detail.via = "console"` (`Context.via`). Success answers 303 to the page that shows the
/// outcome; a refusal shows the page the form was on again with the problem's detail, with the
/// problem's status, and is recorded as every console refusal is. A post without the session's
/// CSRF token is refused before any of this (`Console.requireForm`).
enum ConsoleActions {
    static func vote(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        let back = form["back"] == "approvals" ? "/ui/approvals" : "/ui/jobs/\(id)"
        return try attempt(context) {
            let input = try ApprovalRequest(
                .object(["decision": .string(form["decision"] ?? ""), "comment": .string(form["comment"] ?? "")]))
            let outcome = try Approve.cast(input, on: id, by: session.principal, via: "console", request, context)
            let done = outcome.decision == .approve ? "approved" : "rejected"
            return "\(back)?done=\(outcome.counted ? done : "repeat")&job=\(id)"
        } refused: { notice in
            form["back"] == "approvals"
                ? try ListPages.renderInbox(session, context, notice: notice)
                : try JobPage.render(session, context, job: id, notice: notice)
        }
    }

    static func cancel(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try onJobPage(request, params, context) { id, session, form in
            try Rollback.cancel(job: id, by: session.principal, reason: try text(form, "reason") ?? "", context)
            return "/ui/jobs/\(id)?done=cancelled"
        }
    }

    static func rollBackJob(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        try onJobPage(request, params, context) { id, session, form in
            let rollback = try Rollback.rollBack(
                job: id, by: session.principal, reason: try text(form, "reason"), context)
            return "/ui/jobs/\(rollback)?done=rollback"
        }
    }

    /// A form of job `{id}`'s page: `act(id, session, form)` as `attempt` runs it, a refusal shown
    /// on the job's page.
    static func onJobPage(
        _ request: Request, _ params: [String: String], _ context: Context,
        _ act: (Int64, Sessions.Live, [String: String]) throws -> String
    ) throws -> Response {
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        return try attempt(context) {
            try act(id, session, form)
        } refused: { notice in
            try JobPage.render(session, context, job: id, notice: notice)
        }
    }

    /// "Roll back to this" on an environment's page: `to_release` is the release's id.
    static func rollBackEnvironment(_ request: Request, _ params: [String: String], _ context: Context) throws
        -> Response
    {
        let project = params["project"] ?? ""
        let environment = params["environment"] ?? ""
        context.subject = "\(project)/\(environment)"
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        return try attempt(context) {
            let named = try text(form, "to_release", max: 255)
            let rollback = try Rollback.rollBack(
                project: project, environment: environment, to: named, by: session.principal,
                reason: try text(form, "reason"), context)
            return "/ui/jobs/\(rollback)?done=rollback"
        } refused: { notice in
            try ListPages.renderEnvironment(
                session, context, project: project, environment: environment, notice: notice)
        }
    }

    /// Runs `act`, answering 303 to where it says; a `DravenError` is recorded as a refusal and
    /// answered by `refused` (the form's page with the problem) under the problem's status.
    static func attempt(
        _ context: Context, _ act: () throws -> String, refused: (Console.Notice) throws -> Response
    ) throws -> Response {
        do {
            return Response(status: 303, headers: [("Location", try act())])
        } catch let error as DravenError {
            let problem = Problem(error)
            context.auditRefusal(problem)
            var response: Response
            do {
                response = try refused(Console.Notice(text: problem.detail, refusal: true))
            } catch {  // the page itself is gone for the viewer (no such job, no read grant): the problem alone
                response = Pages.problem(problem, signedIn: context.principal)
            }
            response.status = problem.status
            return response
        }
    }

    /// A form's optional text field: nil when absent or empty.
    /// - Throws: `.invalidField` when longer than `max` bytes (the API's limit).
    static func text(_ form: [String: String], _ name: String, max: Int = 1000) throws -> String? {
        guard let value = form[name], !value.isEmpty else { return nil }
        return try BodyFields(.object([name: .string(value)]), fields: [name], of: "this form")
            .string(name, required: false, max: max)
    }
}
