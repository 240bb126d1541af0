/// Event-driven plans: a verified push of a tag or branch that a plan's trigger matches starts a
/// run of the plan's latest version, in the push webhook's own transaction, after the delivery
/// was recorded (`Deliveries.insertOnce`): a repeated delivery is a duplicate before it gets
/// here, so a push starts each plan at most once.
extension PlanEngine {
    /// What a push did to the plans that watch it.
    package struct PushStarts: Sendable, Equatable {
        /// The runs started, in plan id order.
        package var runs: [Int64] = []
        /// Plans whose trigger matched but that did not start: `[plan id: why]` (audited too).
        package var refused: [String: String] = [:]
    }

    /// Starts a run of every plan whose trigger matches one of `moves` (a ref and its new head) in
    /// `project`: the pushed name fills the trigger's input, the run is requested by its `run_as`
    /// person, and the run's reason names the push. A plan that cannot start (the person lost a
    /// grant or cannot sign in, the name does not match the input's pattern) is refused alone: its
    /// savepoint is undone, `plan_run.refused` is audited with why, and the push goes on.
    package static func startOnPush(
        _ tx: Transaction, project: String, moves: [PushEvent.Move], delivery: String, now: Int64
    ) throws -> PushStarts {
        var out = PushStarts()
        for (ref, sha) in moves {
            let kind: Plan.Input.Kind
            let name: Substring
            if ref.hasPrefix("refs/tags/") {
                (kind, name) = (.tag, ref.dropFirst("refs/tags/".count))
            } else if ref.hasPrefix("refs/heads/") {
                (kind, name) = (.branch, ref.dropFirst("refs/heads/".count))
            } else {
                continue
            }
            for trigger in try Plans.pushTriggers(tx.db, project: project, kind: kind)
            where Policy.glob(trigger.pattern, matches: String(name)) {
                let reason = "push of \(ref) (\(sha.prefix(12))) to \(project), delivery \(delivery)"
                do {
                    let run = try tx.savepoint { () throws -> Int64 in
                        guard let person = try People.enabledID(tx.db, handle: trigger.runAs) else {
                            throw DravenError.forbidden(action: "deploy", project: project, environment: "*")
                        }
                        let plan = try Plans.current(tx.db, id: trigger.planID)
                        let principal = Principal(personID: person, handle: trigger.runAs, tokenID: 0)
                        return try start(
                            tx, plan: plan, inputs: [trigger.input: .string(String(name))], reason: reason,
                            by: principal, idempotencyKey: "push:\(delivery)", now: now
                        ).id
                    }
                    out.runs.append(run)
                } catch let refusal as DravenError {
                    let why = Problem(refusal).detail
                    out.refused[trigger.planID] = why
                    try Audit.record(
                        tx, at: now, actor: trigger.runAs, action: "plan_run.refused",
                        subject: "plan/\(trigger.planID)",
                        detail: ["push": .string(ref), "delivery": .string(delivery), "why": .string(why)])
                }
            }
        }
        return out
    }
}
