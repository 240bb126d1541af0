/// Which events a subscription takes (`events = ["job.*", "plan_run.finished"]`). A pattern is
/// an event's name (`job.finished`), a family followed by `.*` (`job.*`: every `job.` event), or
/// `*` (every event). An event is taken when any pattern matches it. A pattern that can match
/// no event draven sends (a typo such as `jobs.*`) is refused when the configuration is applied.
package struct EventFilter: Sendable, Equatable {
    package let patterns: [String]

    /// - Returns: the filter, or why the first bad pattern is refused.
    package static func parse(_ patterns: [String]) -> Result<EventFilter, FilterError> {
        guard !patterns.isEmpty else { return .failure(FilterError(reason: "must name at least one event or \"*\"")) }
        for p in patterns {
            if p == "*" || EventCatalog.types[p] != nil { continue }
            if p.hasSuffix(".*"), EventCatalog.families.contains(String(p.dropLast(2))) { continue }
            let families = EventCatalog.families.sorted().map { $0 + ".*" }.joined(separator: ", ")
            return .failure(
                FilterError(reason: "\"\(p)\" names no event: use an event's name, \(families) or \"*\""))
        }
        return .success(EventFilter(patterns: patterns))
    }

    package struct FilterError: Error, Sendable {
        package var reason: String
    }

    /// Whether an event named `name` (`job.finished`) is taken.
    package func matches(_ name: String) -> Bool {
        patterns.contains { p in
            if p == "*" || p == name { return true }
            guard p.hasSuffix(".*") else { return false }
            return name.hasPrefix(p.dropLast(1))  // "job." of "job.*"
        }
    }
}

/// Every event draven sends: its name (what filters match, `family.what`) and its CloudEvents
/// type — the CDEvents vocabulary (spec v0.4) where one says the same thing, draven's own
/// `dev.draven.…` types otherwise (README, "Event stream", has the table).
package enum EventCatalog {
    package static let cdeventsVersion = "0.4.1"

    package static let types: [String: String] = [
        "job.created": "dev.draven.job.created",
        "job.awaiting_approval": "dev.draven.job.awaiting_approval",
        "job.approved": "dev.draven.job.approved",
        "job.rejected": "dev.draven.job.rejected",
        "job.expired": "dev.draven.job.expired",
        "job.queued": "dev.draven.job.queued",
        "job.dispatching": "dev.draven.job.dispatching",
        "job.started": "dev.cdevents.pipelinerun.started.0.2.0",
        "job.finished": "dev.cdevents.pipelinerun.finished.0.2.0",
        "approval.approved": "dev.draven.approval.approved",
        "approval.rejected": "dev.draven.approval.rejected",
        "lock.acquired": "dev.draven.lock.acquired",
        "lock.released": "dev.draven.lock.released",
        "release.deployed": "dev.cdevents.service.deployed.0.2.0",
        "release.upgraded": "dev.cdevents.service.upgraded.0.2.0",
        "release.rolled_back": "dev.cdevents.service.rolledback.0.2.0",
        "environment.modified": "dev.cdevents.environment.modified.0.2.0",
        "plan_run.started": "dev.cdevents.pipelinerun.started.0.2.0",
        "plan_run.finished": "dev.cdevents.pipelinerun.finished.0.2.0",
        "plan_run.paused": "dev.draven.plan_run.paused",
        "plan_run.resumed": "dev.draven.plan_run.resumed",
        "plan_run.compensating": "dev.draven.plan_run.compensating",
    ]

    package static let families: Set<String> = Set(types.keys.map { String($0.split(separator: ".")[0]) })
}
