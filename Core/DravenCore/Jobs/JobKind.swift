/// What a job does (the `jobs.kind` column; the raw values are what is stored). Each decision
/// that depends on the kind is a property here, an exhaustive switch: a new kind does not
/// build until every one of them is decided for it.
package enum JobKind: String, Sendable, CaseIterable {
    /// Puts a ref live: what people ask for.
    case deploy
    /// Puts a recorded release live again (`Recovery.rollback`).
    case rollback
    /// Looks at the environment (`deploy:info`) after a deploy failed; changes nothing.
    case diagnostic

    /// The Deployer task a job of this kind runs (passed to the pipeline as `task` / `DRAVEN_TASK`).
    package var task: String {
        switch self {
        case .deploy: "deploy"
        case .rollback: "rollback"
        case .diagnostic: "deploy:info"
        }
    }

    /// Whether the pipeline is told the task (and the sha when known): a deploy's request stays
    /// exactly what pipelines without a `task` input accept.
    package var namesTask: Bool {
        switch self {
        case .deploy: false
        case .rollback, .diagnostic: true
        }
    }

    /// Whether a job of this kind that succeeded is a release (`Releases`): a diagnostic changed
    /// nothing, so it is neither recorded nor rolled back.
    package var isRelease: Bool {
        switch self {
        case .deploy, .rollback: true
        case .diagnostic: false
        }
    }

    /// Whether the environment's failure policy (`on_failure`) applies when a job of this kind
    /// fails while running. Only deploys: a failed rollback or diagnostic never starts another
    /// job, so recovery cannot loop.
    package var hasFailurePolicy: Bool {
        switch self {
        case .deploy: true
        case .rollback, .diagnostic: false
        }
    }

    /// Whether the runner's log of a job of this kind is also noted on its parent job: a
    /// diagnostic's log belongs with the deploy it looked at.
    package var logsToParent: Bool {
        switch self {
        case .diagnostic: true
        case .deploy, .rollback: false
        }
    }

    /// The grant that starts (and so stops) a job of this kind: deploys need `deploy`,
    /// rollbacks and diagnostics `rollback`.
    package var grant: Action {
        switch self {
        case .deploy: .deploy
        case .rollback, .diagnostic: .rollback
        }
    }
}
