package import DravenCore

/// The console's deploy form: `GET /ui/deploy` lists the environments the viewer may deploy to
/// with the refs each policy accepts; `POST /ui/deploy` goes through `Trigger.deploy`, the same
/// code as `POST /api/v1/deploys` (grant, policy, lock, audit), with a per-form idempotency key so
/// a form posted twice makes one job. A refusal is shown next to the field it is about, with the
/// problem's detail, and recorded as every console refusal is.
enum DeployForm {
    /// What the form keeps between a refused post and the page showing it again.
    struct Values {
        var target = ""
        var ref = ""
        var kind = ""
        var reason = ""
    }

    static func page(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        guard let session = try SessionCookie.session(request, context) else { return Console.toSignIn }
        try Sessions.touch(try context.db(), session, now: context.now)
        return try render(session, context, values: Values(), error: nil)
    }

    static func post(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let session = try Console.requireForm(request, context)
        let form = try Console.formItems(request)
        let values = Values(
            target: form["target"] ?? "", ref: form["ref"] ?? "", kind: form["ref_kind"] ?? "",
            reason: form["reason"] ?? "")
        do {
            let parts = values.target.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw DravenError.invalidField(pointer: "/environment", reason: "choose an environment")
            }
            var body: JSONObject = [
                "project": .string(parts[0]), "environment": .string(parts[1]), "ref": .string(values.ref),
            ]
            if !values.reason.isEmpty { body["reason"] = .string(values.reason) }
            if !values.kind.isEmpty { body["ref_kind"] = .string(values.kind) }
            let input = try DeployRequest(.object(body))
            let key = form["key"].flatMap { $0.isEmpty ? nil : $0 }
            let (job, _) = try Trigger.deploy(
                input, by: session.principal,
                idempotencyKey: {
                    guard let key else { return nil }
                    return try Trigger.idempotencyKey(
                        Request(method: "POST", path: "", headers: ["idempotency-key": key]))
                }, context)
            return Response(status: 303, headers: [("Location", "/ui/?done=deployed&job=\(job.id)")])
        } catch let error as DravenError {
            let problem = Problem(error)
            context.auditRefusal(problem)
            var response = try render(session, context, values: values, error: (field(error), problem.detail))
            response.status = problem.status
            return response
        }
    }

    /// Whether a deploy now would wait, said before anyone presses the button (a hidden queue
    /// makes people deploy again): the lock's holder and how many wait, or that a busy
    /// environment whose policy rejects would refuse it.
    static func busy(_ db: Database, _ environment: Int64, _ policy: Policy) throws -> HTML {
        guard let holder = try Locks.holder(db, environment: environment) else { return .empty }
        let waiting = try Job.queued(db, environment: environment).count
        let then: HTML =
            policy.approvalsRequired > 0
            ? "a deploy now waits for its approvals, then for the lock"
            : policy.lockMode == .reject
                ? "a deploy now is refused (the policy rejects while busy)"
                : "a deploy now waits at position \(waiting + 1) of the queue"
        return " — <span class=\"why\">busy: \(Pages.jobLink(holder.jobID)) holds the lock; \(then)</span>"
    }

    /// The ref-kind choices: as typed (a full ref, or a name only one kind of ref the policy
    /// accepts can have), a branch, a tag, a commit sha — the API's `ref_kind`.
    static func kinds(_ chosen: String) -> HTML {
        let choices = [("", "as typed"), ("branch", "a branch"), ("tag", "a tag"), ("sha", "a commit sha")]
        return HTML.join(
            choices.map { value, label in
                let selected: HTML = value == chosen ? " selected" : .empty
                return "<option value=\"\(value)\"\(selected)>\(label)</option>"
            })
    }

    /// The form field a refusal is about: `ref` (the ref, its kind, the policy's refs rule),
    /// `reason`, or `target` (which environment: unknown, no grant, busy, …).
    static func field(_ error: DravenError) -> String {
        switch error {
        case .invalidField(let pointer, _) where pointer.hasSuffix("ref") || pointer.hasSuffix("ref_kind"): "ref"
        case .invalidField(let pointer, _) where pointer.hasSuffix("reason"): "reason"
        case .policyDenied(let rule, _) where rule == "refs": "ref"
        default: "target"
        }
    }

    static func render(
        _ session: Sessions.Live, _ context: Context, values: Values, error: (field: String, detail: String)?
    ) throws -> Response {
        let db = try context.db()
        var options: [HTML] = []
        var accepts: [HTML] = []
        for env in try Grants.environments(db, person: session.principal.personID, action: .deploy) {
            let policy = try Policy.load(db, environmentID: env.id)
            let value = "\(env.project)/\(env.environment)"
            let refs = policy.refs.map { "\($0.kind.rawValue) \($0.pattern)" }.joined(separator: ", ")
            let selected: HTML = value == values.target ? " selected" : .empty
            options.append("<option value=\"\(value)\"\(selected)>\(value)</option>")
            let approvals: HTML =
                policy.approvalsRequired > 0 ? "; needs \(policy.approvalsRequired) approvals" : .empty
            accepts.append(
                """
                <li><code>\(value)</code> accepts \(refs.isEmpty ? "nothing" : refs)\(approvals)\
                \(try busy(db, env.id, policy))</li>
                """)
        }
        func note(_ name: String) -> (HTML, HTML) {
            guard let error, error.field == name else { return (.empty, .empty) }
            return (
                " aria-invalid=\"true\" aria-describedby=\"\(name)-error\"",
                "<p class=\"error\" id=\"\(name)-error\" role=\"alert\">\(error.detail)</p>"
            )
        }
        let (targetAttr, targetNote) = note("target")
        let (refAttr, refNote) = note("ref")
        let (reasonAttr, reasonNote) = note("reason")
        let key = Hex.encode(Sodium.randomBytes(16))
        let main: HTML
        if options.isEmpty {
            main =
                """
                <h2>Deploy</h2><p>You may deploy to no environment: ask an operator for a <code>deploy</code> \
                grant.</p>
                """
        } else {
            main = """
                <h2>Deploy</h2>
                <form class="stack" method="post" action="/ui/deploy">
                <input type="hidden" name="csrf" value="\(session.csrf)">
                <input type="hidden" name="key" value="\(key)">
                <label for="target">Environment</label>
                <select id="target" name="target" required\(targetAttr)>\(options)</select>\(targetNote)
                <label for="ref">Ref</label>
                <input id="ref" name="ref" type="text" required value="\(values.ref)" \
                placeholder="v1.2.0, develop, refs/heads/main or a commit sha"\(refAttr)>\(refNote)
                <label for="ref_kind">The ref is</label>
                <select id="ref_kind" name="ref_kind">\(kinds(values.kind))</select>
                <label for="reason">Reason</label>
                <input id="reason" name="reason" type="text" value="\(values.reason)"\(reasonAttr)>\(reasonNote)
                <button type="submit">Deploy</button>
                </form>
                <h3>What each environment accepts</h3><ul>\(accepts)</ul>
                """
        }
        return Pages.layout(title: "Deploy", session: session, main: main)
    }
}
