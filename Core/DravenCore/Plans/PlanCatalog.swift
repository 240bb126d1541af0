/// Where a new run's plan comes from: the newest applied version of plan `id`.
///
/// A stand-in until the plan documents' store (`Plans`, migration 0014: `Plans.latest`) is merged
/// with the engine: it reads a plan's snapshot (`Plan.snapshot`) from the `settings` row
/// `plan_snapshot/ID`, which only the end-to-end tests write. The one place to change at the merge.
package enum PlanCatalog {
    /// - Throws: `.notFound` when no plan `id` was applied.
    package static func latest(_ db: Database, id: String) throws -> Plan {
        guard let text = try Settings.get(db, "plan_snapshot/\(id)") else {
            throw DravenError.notFound(what: "no plan \(id)")
        }
        return try Plan(snapshot: try JSON.parse(text))
    }
}
