/// `draven plan explain`: a dry run of a plan for a person and inputs, saying step by step where
/// policy, grants, approvals or a held lock would stop the run today. It reads through the owners
/// (`Grants`, `Policy`, `Locks`, `Deploys.check`, `Releases`) and writes nothing, not even an
/// audit record: like reading a run, it changes nothing (a refusal is recorded as any other).
///
/// The prediction follows the engine's rules (`Plan`'s doc comment) on the path where every step
/// that starts succeeds: a condition is evaluated with the steps before it `succeeded` (or
/// `skipped`, as predicted); a step that depends on a skipped one its condition does not read is
/// skipped; a step that depends on one that would stop is `after` it (the first such, in document
/// order). A step *stops* the run when it would be refused (`refuse`: the run fails there) or wait
/// for people or a lock (`wait`: approvals, a held lock); a wait step or a check only takes time.
package enum PlanExplain {
    /// What a step would do.
    package enum Would: String, Sendable, CaseIterable {
        /// Its job would be dispatched; a wait, check or notify step would go ahead.
        case start
        /// It would wait for people (approvals) or for a lock another job holds.
        case wait
        /// It would be refused (grant, policy, ref, a `reject` lock): the run fails there.
        case refuse
        /// Its condition is false, or it depends on a skipped step.
        case skip
        /// It depends on a step that would stop the run.
        case after
    }

    package struct Step: Sendable, Equatable {
        package var id: String
        package var type: String
        package var would: Would
        package var why: String
        /// The step that stops the run before this one (`would == .after`).
        package var after: String?
        /// `project/environment` of a deploy or diagnostic step.
        package var environment: String?
        /// A deploy step's ref, rendered from the inputs.
        package var ref: String?

        /// Whether the run would stop here.
        var stops: Bool { would == .refuse || would == .wait }
    }

    package struct Explanation: Sendable, Equatable {
        package var plan: String
        package var version: Int64
        package var inputs: JSONObject
        /// Why the run could not even start (a `deploy` grant missing on one of its environments).
        package var refused: String?
        /// In document order.
        package var steps: [Step]

        /// `{"plan", "version", "inputs", "would": "start"|"refuse", "why"?, "stops_at": [...], "steps": [...]}`.
        package var json: JSON {
            var object: JSONObject = [
                "plan": .string(plan), "version": .int(version), "inputs": .object(inputs),
                "would": .string(refused == nil ? "start" : "refuse"),
                "stops_at": .array(steps.filter(\.stops).map { .string($0.id) }),
            ]
            if let refused { object["why"] = .string(refused) }
            object["steps"] = .array(
                steps.map { step in
                    var o: JSONObject = [
                        "id": .string(step.id), "type": .string(step.type), "would": .string(step.would.rawValue),
                        "why": .string(step.why),
                    ]
                    if let after = step.after { o["after"] = .string(after) }
                    if let environment = step.environment { o["environment"] = .string(environment) }
                    if let ref = step.ref { o["ref"] = .string(ref) }
                    return .object(o)
                })
            return .object(object)
        }
    }

    /// Explains a run of `plan` by `principal` with `given` inputs, as of now.
    /// - Throws: `.invalidField` (`/inputs/NAME`, as `PlanEngine.start`).
    package static func explain(_ db: Database, _ plan: Plan, inputs given: JSONObject, by principal: Principal)
        throws -> Explanation
    {
        let inputs = try PlanEngine.checkInputs(plan, given)
        var refused: String?
        do { try PlanEngine.requireGrants(db, plan, principal) } catch let error as DravenError {
            refused = Problem(error).detail
        }
        var scope = PlanScope(inputs: inputs.entries.reduce(into: [:]) { $0[$1.key] = $1.value.stringValue })
        var done: [String: Step] = [:]
        var left = plan.steps
        while !left.isEmpty {
            // Dependencies form no cycle (Plan.parse), so some step always has all of its explained.
            guard let i = left.firstIndex(where: { $0.dependsOn.allSatisfy { done[$0] != nil } }) else { break }
            let step = left.remove(at: i)
            let explained = try explain(db, plan, step, deps: step.dependsOn.compactMap { done[$0] }, scope, principal)
            done[step.id] = explained
            switch explained.would {
            case .skip: scope.steps[step.id] = .init(result: "skipped")
            case .start: scope.steps[step.id] = .init(result: "succeeded", attempts: 1)
            default: break
            }
        }
        return Explanation(
            plan: plan.id, version: plan.version, inputs: inputs, refused: refused,
            steps: plan.steps.compactMap { done[$0.id] })
    }

    static func explain(
        _ db: Database, _ plan: Plan, _ step: Plan.Step, deps: [Step], _ scope: PlanScope, _ principal: Principal
    ) throws -> Step {
        var out = Step(id: step.id, type: step.action.type, would: .start, why: "")
        if let (project, environment) = step.action.environment { out.environment = "\(project)/\(environment)" }
        if let blocked = deps.first(where: { $0.stops || $0.would == .after }) {
            let root = blocked.after ?? blocked.id
            out.would = .after
            out.after = root
            out.why = "after \(root), which would stop the run"
            return out
        }
        let read = step.condition?.stepsNamed ?? []
        if let dep = deps.first(where: { $0.would == .skip && !read.contains($0.id) }) {
            out.would = .skip
            out.why = "\(dep.id) would be skipped"
            return out
        }
        if let condition = step.condition, !condition.holds(scope) {
            out.would = .skip
            out.why =
                "its condition would be false: \(condition.source)"
                + (read.isEmpty ? "" : " (with the steps before it succeeding)")
            return out
        }
        do {
            (out.would, out.why) = try action(db, plan, step, scope, principal, ref: &out.ref)
        } catch let error as DravenError {
            out.would = .refuse
            out.why = Problem(error).detail
        }
        return out
    }

    /// What the step's action would do once it is ready.
    /// - Throws: the `DravenError` its start would be refused with.
    static func action(
        _ db: Database, _ plan: Plan, _ step: Plan.Step, _ scope: PlanScope, _ principal: Principal,
        ref: inout String?
    ) throws -> (Would, String) {
        switch step.action {
        case .deploy(let project, let environment, let template, _):
            let target: Target
            let policy: Policy
            var dispatched = "its job would be dispatched"
            if let from = template.stepsNamed.first {
                // A ref made of earlier steps' outputs is known only when the step starts.
                target = try Target.find(db, project: project, environment: environment)
                try Grants.require(db, principal, .deploy, project: project, environment: environment)
                policy = try Policy.load(db, environmentID: target.environmentID)
                dispatched += " (its ref, from \(from)'s outputs, is checked when it starts)"
            } else {
                let text = template.render(scope)
                ref = text
                let input = DeployRequest(
                    project: project, environment: environment, ref: text, refKind: plan.refKind(template))
                let checked = try Deploys.check(db, input, by: principal)
                (target, policy) = (checked.target, checked.policy)
                dispatched += " (\(checked.ref.qualified))"
            }
            let lock = try lockWait(db, target, policy, "\(project)/\(environment)", queue: false)
            if policy.approvalsRequired > 0 {
                let then = lock.map { "; then " + $0 } ?? ""
                return (.wait, "its job would wait for \(policy.approvalsRequired) approval(s)\(then)")
            }
            if let lock { return (.wait, lock) }
            return (.start, dispatched)
        case .diagnostic(let project, let environment, let template):
            let target = try Target.find(db, project: project, environment: environment)
            try Grants.require(db, principal, .deploy, project: project, environment: environment)
            if template == nil, try Releases.live(db, environment: target.environmentID) == nil {
                throw DravenError.conflict(
                    "\(project)/\(environment) has no release to look at and the step names no ref")
            }
            let policy = try Policy.load(db, environmentID: target.environmentID)
            if let lock = try lockWait(db, target, policy, "\(project)/\(environment)", queue: true) {
                return (.wait, lock)
            }
            return (.start, "its diagnostic job would be dispatched")
        case .approval(let approvals, let groups):
            let who = groups.isEmpty ? "people with an approve grant" : "members of " + groups.joined(separator: ", ")
            return (.wait, "it waits for \(approvals) approval(s) from \(who), not from who starts the run")
        case .wait(let seconds):
            return (.start, "it ends \(seconds) s after it starts")
        case .check(let check):
            return (.start, "it asks \(check.urlSecret) every \(check.every) s for \(check.expectStatus)")
        case .notify(let project, _):
            return (.start, "it sends a message to \(project)'s channels")
        }
    }

    /// Why a job on `target` would wait for its lock today (nil: the lock is free).
    /// - Throws: `.environmentBusy` when the lock is held and the policy rejects (unless `queue`).
    static func lockWait(_ db: Database, _ target: Target, _ policy: Policy, _ name: String, queue: Bool) throws
        -> String?
    {
        guard let holder = try Locks.holder(db, environment: target.environmentID) else { return nil }
        if let refusal = StateMachine.busyRefusal(environment: name, holder: holder, policy: policy, queue) {
            throw refusal
        }
        return "its job would queue behind job \(holder.jobID), which holds the lock of \(name)"
    }
}

extension Plan {
    /// A template that is exactly one tag or branch input names its ref's kind.
    package func refKind(_ template: PlanTemplate) -> String? {
        guard template.parts.count == 1, case .path(let path) = template.parts[0], path.count == 2,
            path[0] == "inputs", let input = inputs.first(where: { $0.name == path[1] }), input.type != .string
        else { return nil }
        return input.type.rawValue
    }
}
