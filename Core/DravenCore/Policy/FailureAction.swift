/// What an environment's failure policy (`on_failure`, stored as a JSON array of the raw values)
/// does when a deploy that was running fails or times out. The cases are declared in the order
/// `Recovery.afterFailure` runs them, whatever order the configuration lists them in.
package enum FailureAction: String, Sendable, CaseIterable {
    /// A `deploy:info` job, first: it looks at the broken state before anything changes it.
    case diagnostic
    /// A rollback job to the last succeeded release.
    case rollback
}
