extension PlanRuns.Run {
    /// What `GET /api/v1/runs/{id}` answers: the run, `progress` (the share of steps ended),
    /// `current_steps` (running or waiting to retry), `estimated_completion` (see `estimate`) and
    /// each step: status, times, attempts, `result` (once ended), its job, why it failed or was
    /// skipped, its outputs, its compensation.
    package func json(votes: [String: [PlanRuns.Vote]], means: [String: Int64], now: Int64) -> JSONObject {
        let ended = steps.filter(\.status.isEnded).count
        let progress = steps.isEmpty ? 1 : Double(ended) / Double(steps.count)
        var byStep = JSONObject()
        for (step, row) in zip(plan.steps, steps) {
            var o: JSONObject = [
                "type": .string(step.action.type), "status": .string(row.status.rawValue),
                "started_at": time(row.startedAt), "completed_at": time(row.completedAt),
                "attempts": .int(Int64(row.attempts)),
                "result": row.status.isEnded ? .string(row.status.rawValue) : .null,
                "job_id": row.jobID.map(JSON.int) ?? .null, "depends_on": .array(step.dependsOn.map(JSON.string)),
                "cause": row.cause.map(JSON.string) ?? .null, "reason": .string(row.reason),
                "outputs": .object(row.outputs),
            ]
            if let due = row.dueAt { o[row.status == .retrying ? "retry_at" : "next_at"] = time(due) }
            if let deadline = row.deadlineAt { o["deadline_at"] = time(deadline) }
            if step.compensate != nil {
                o["compensation"] = row.compensation.map { .string($0.rawValue) } ?? .null
                o["compensation_job_id"] = row.compensationJob.map(JSON.int) ?? .null
            }
            if let votes = votes[row.id] {
                o["votes"] = .array(
                    votes.map {
                        [
                            "by": .string($0.person), "decision": .string($0.decision), "comment": .string($0.comment),
                            "at": .string(Clock.rfc3339($0.at)),
                        ]
                    })
            }
            byStep[row.id] = .object(o)
        }
        return [
            "run_id": .int(id), "plan": .string(plan.id), "version": .int(plan.version),
            "status": .string(status.rawValue), "progress": .double((progress * 100).rounded() / 100),
            "current_steps": .array(
                steps.filter { $0.status == .running || $0.status == .retrying }.map { .string($0.id) }),
            "started_at": time(startedAt), "started_by": .string(startedByHandle), "reason": .string(reason),
            "inputs": .object(inputs), "progressed_at": time(progressedAt), "ended_at": time(endedAt),
            "estimated_completion": status.isEnded ? .null : estimate(means: means, now: now).map(time) ?? .null,
            "detail": .object(detail), "steps": .object(byStep),
        ]
    }

    private func time(_ t: Int64?) -> JSON { t.map { .string(Clock.rfc3339($0)) } ?? .null }

    /// When the run should end, from the mean durations of the same steps in earlier runs of the
    /// plan (`means`; a wait's own duration; 0 for a step never seen to succeed): each step ends
    /// at the latest of its dependencies' ends (or when it started, or its retry time) plus its
    /// duration, and the run with its last step. Nil while a run is paused.
    package func estimate(means: [String: Int64], now: Int64) -> Int64? {
        guard status == .running else { return nil }
        var ends: [Int: Int64] = [:]
        func end(_ i: Int, depth: Int = 0) -> Int64 {
            if let known = ends[i] { return known }
            let row = steps[i]
            let step = plan.steps[i]
            var duration = means[row.id] ?? 0
            if case .wait(let seconds) = step.action { duration = seconds }
            let value: Int64
            switch row.status {
            case _ where row.status.isEnded: value = row.completedAt ?? now
            case .running: value = max(now, (row.attemptAt ?? now) + duration)
            default:
                let deps = depth > steps.count ? [] : step.dependsOn.compactMap(index).map { end($0, depth: depth + 1) }
                value = max(deps.max() ?? now, row.dueAt ?? now, now) + duration
            }
            ends[i] = value
            return value
        }
        return steps.indices.map { end($0) }.max()
    }
}
