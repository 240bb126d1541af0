/// The console's read models of deploy plans: the plans a viewer may read with their newest runs
/// (`PlanListing`), and one run as its page shows it (`RunView`): each step with its depth in the
/// graph of dependencies and what the viewer may do about it, decided through the checks the
/// engine's entry points run (`PlanEngine.checkVote`, `checkRetry`, `checkCancel`), never a copy.
package struct PlanListing: Sendable {
    package var stored: Plans.Stored
    package var plan: Plan
    /// Newest first.
    package var runs: [PlanRuns.Run]

    /// The latest version of every plan `viewer` may read (`Plan.readable`), by id, each with its
    /// newest `runs` runs.
    package static func all(_ db: Database, viewer: Principal, runs: Int = 5) throws -> [PlanListing] {
        var out: [PlanListing] = []
        for stored in try Plans.list(db) {
            let plan = try stored.plan()
            guard try plan.readable(db, by: viewer) else { continue }
            out.append(
                PlanListing(stored: stored, plan: plan, runs: try PlanRuns.recent(db, plan: plan.id, limit: runs)))
        }
        return out
    }

    /// Plan `id`'s latest version and its newest `runs` runs.
    /// - Throws: `.notFound` when there is no such plan or the viewer may not read it (as the API).
    package static func one(_ db: Database, id: String, viewer: Principal, runs: Int = 10) throws -> PlanListing {
        let stored = try Plans.latest(db, id: id)
        let plan = try stored?.plan()
        guard let stored, let plan, try plan.readable(db, by: viewer) else {
            throw DravenError.notFound(what: "no plan \(id.capped(128).text)")
        }
        return PlanListing(stored: stored, plan: plan, runs: try PlanRuns.recent(db, plan: id, limit: runs))
    }
}

extension Plan {
    /// Whether `principal` may read this plan and its runs: a `read` grant on one of the
    /// environments its deploy and diagnostic steps name (anyone, for a plan that names none).
    package func readable(_ db: Database, by principal: Principal) throws -> Bool {
        let environments = targets
        if environments.isEmpty { return true }
        return try environments.contains {
            try Grants.allows(
                db, person: principal.personID, action: .read, project: $0.project, environment: $0.environment)
        }
    }

    /// Each step's column in the drawn graph: 0 for a step without dependencies, else one more
    /// than the deepest step it depends on (the plan has no cycle: `Plan.parse` refuses them).
    package var depths: [Int] {
        var known: [String: Int] = [:]
        func depth(_ i: Int, _ guardDepth: Int) -> Int {
            let step = steps[i]
            if let d = known[step.id] { return d }
            let deps =
                guardDepth > steps.count ? [] : step.dependsOn.compactMap { id in steps.firstIndex { $0.id == id } }
            let d = deps.map { depth($0, guardDepth + 1) + 1 }.max() ?? 0
            known[step.id] = d
            return d
        }
        return steps.indices.map { depth($0, 0) }
    }
}

/// One run for its page: the run, each step with its column and actions, the run's cancel, and
/// the estimate (`PlanRuns.Run.estimate`).
package struct RunView: Sendable {
    package var run: PlanRuns.Run
    package var steps: [StepView]
    package var cancel: Permission
    package var estimate: Int64?

    package struct StepView: Sendable {
        package var step: Plan.Step
        package var row: PlanRuns.Step
        package var depth: Int
        /// A step that failed, of a run that has not succeeded: whether the viewer may start it again.
        package var retry: Permission?
        /// An approval step: the votes so far, and (while it waits for votes) whether the viewer may vote.
        package var votes: [PlanRuns.Vote]
        package var vote: Permission?
    }

    /// Run `id` as `viewer` sees it at `now`.
    /// - Throws: `.notFound` when there is no such run or the viewer may not read its plan (as the API).
    package static func load(_ db: Database, run id: Int64, viewer: Principal, now: Int64) throws -> RunView {
        guard let run = try PlanRuns.find(db, id: id), try run.plan.readable(db, by: viewer) else {
            throw DravenError.notFound(what: "no plan run \(id)")
        }
        let depths = run.plan.depths
        var steps: [StepView] = []
        for (i, (step, row)) in zip(run.plan.steps, run.steps).enumerated() {
            var view = StepView(step: step, row: row, depth: depths[i], retry: nil, votes: [], vote: nil)
            if row.status.isFailure && (run.status == .paused || run.status == .failed) {
                view.retry = try Permission.deciding {
                    _ = try PlanEngine.checkRetry(db, run, step: row.id, by: viewer)
                    return "starts \(row.id) again with a fresh retry budget; the steps that succeeded stay"
                }
            }
            if case .approval = step.action {
                view.votes = try PlanRuns.votes(db, run: run.id, step: row.id)
                if row.status == .running && run.status == .running {
                    view.vote = try vote(db, run, row.id, view.votes, viewer)
                }
            }
            steps.append(view)
        }
        let cancel =
            run.status.isEnded
            ? Permission.pointless("the run has ended (\(run.status.rawValue))")
            : try Permission.deciding {
                try PlanEngine.checkCancel(db, run, by: viewer)
                return "its running steps' jobs are cancelled; nothing is compensated"
            }
        let estimate = run.estimate(means: try PlanRuns.meanDurations(db, plan: run.plan.id), now: now)
        return RunView(run: run, steps: steps, cancel: cancel, estimate: estimate)
    }

    /// The vote's checks; a vote the viewer already cast is not offered again (the engine would refuse it).
    static func vote(
        _ db: Database, _ run: PlanRuns.Run, _ step: String, _ votes: [PlanRuns.Vote], _ viewer: Principal
    ) throws -> Permission {
        var required = 0
        let permission = try Permission.deciding {
            required = try PlanEngine.checkVote(db, run, step: step, by: viewer).required
            return nil
        }
        guard permission.allowed else { return permission }
        if let mine = votes.first(where: { $0.person == viewer.handle }) {
            return .pointless("you already voted (\(mine.decision)) on \(step)")
        }
        let left = required - votes.filter { $0.decision == "approve" }.count - 1
        return .allowed(
            note: left > 0
                ? "\(left) more approval\(left == 1 ? "" : "s") needed after yours" : "your approval ends the step")
    }

    /// What the page's ETag follows beyond the store's version: the run's status, progress time
    /// and each step's status and attempts.
    package static func version(_ db: Database, run id: Int64) throws -> String {
        guard let run = try PlanRuns.find(db, id: id) else { return "none" }
        return
            ([run.status.rawValue, String(run.progressedAt)] + run.steps.map { "\($0.status.rawValue)\($0.attempts)" })
            .joined(separator: ".")
    }
}
