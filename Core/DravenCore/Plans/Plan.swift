/// A deploy plan: a named, versioned workflow of steps that draven runs as one unit (a promotion
/// stage → soak → approval → prod, or several services in dependency order). Applied with
/// `draven apply` or `POST /api/v1/plans`; parsed and checked by `Plan.parse` (every refusal names
/// the key, as a JSON pointer); stored by `Plans` (one row per version: a run keeps the version it
/// started with).
///
/// How a run moves (`PlanRuns`, the engine):
/// - A step is ready when every step it `depends_on` has ended. It then runs if each of them
///   `succeeded`, or was `skipped` and the step's `condition` names it (`steps.X.…`); a step
///   that depends on a skipped step whose result its condition does not read is skipped too
///   ("because X was skipped"), as GitHub Actions does with `needs`. A false condition skips the
///   step, with the condition as the reason.
/// - A step that fails for good (its retries spent, or a cause its `retry.on` does not list)
///   ends the run by `on_failure`: `fail` (the default: steps still running end, nothing new
///   starts), `pause` (a person retries the failed step or cancels the run) or `compensate`.
/// - Compensation undoes the completed steps that say `compensate`, newest first; a deploy step's
///   compensation is a rollback job to the release that was live before the run touched that
///   environment, and only where the run changed it.
package struct Plan: Sendable, Equatable {
    /// `[a-z0-9][a-z0-9._-]{0,63}`.
    package var id: String
    /// Increases with every change that is applied (an unchanged document applies as a no-op).
    package var version: Int64
    package var description: String
    /// In declaration order.
    package var inputs: [Input]
    /// In document order; ids are unique and dependencies form no cycle.
    package var steps: [Step]
    package var onFailure: OnFailure
    /// Pushes that start a run (event-driven plans).
    package var triggers: [Trigger]

    package init(
        id: String, version: Int64, description: String = "", inputs: [Input] = [], steps: [Step],
        onFailure: OnFailure = .fail, triggers: [Trigger] = []
    ) {
        self.id = id
        self.version = version
        self.description = description
        self.inputs = inputs
        self.steps = steps
        self.onFailure = onFailure
        self.triggers = triggers
    }

    package func step(_ id: String) -> Step? { steps.first { $0.id == id } }

    /// What the run does when a step fails for good.
    package enum OnFailure: String, Sendable, CaseIterable {
        case fail, pause, compensate
    }

    /// A value the run is started with: `${inputs.NAME}` in templates, `inputs.NAME` in conditions.
    package struct Input: Sendable, Equatable {
        package var name: String
        package var type: Kind
        /// A glob (`*` any run of characters), checked against the value (for a tag or branch, its name).
        package var pattern: String?
        /// Used when the run is started without the input; an input without a default is required.
        package var defaultValue: String?

        package init(name: String, type: Kind, pattern: String? = nil, defaultValue: String? = nil) {
            self.name = name
            self.type = type
            self.pattern = pattern
            self.defaultValue = defaultValue
        }

        package enum Kind: String, Sendable, CaseIterable {
            /// A git tag name or branch name: used as a deploy step's ref.
            case tag, branch
            case string
        }
    }

    /// A push that starts a run: `{"on": "push", "project": "shop", "tag": "v*", "run_as": "alice"}`
    /// (or `"branch"`), verified like any provider webhook; once per delivery. The pushed ref's name
    /// becomes the input `input` (default: the plan's first input). The run is requested by the
    /// person `runAs`: their grants apply at every step, as a scheduled pipeline runs as its owner.
    package struct Trigger: Sendable, Equatable {
        package var project: String
        package var refKind: Plan.Input.Kind
        package var pattern: String
        package var input: String
        package var runAs: String

        package init(project: String, refKind: Plan.Input.Kind, pattern: String, input: String, runAs: String) {
            self.project = project
            self.refKind = refKind
            self.pattern = pattern
            self.input = input
            self.runAs = runAs
        }
    }

    package struct Step: Sendable, Equatable {
        /// `[a-z0-9][a-z0-9_-]{0,63}` (an identifier in expressions: `steps.ID.result`).
        package var id: String
        package var action: Action
        package var dependsOn: [String]
        /// Evaluated when the step is ready; false skips it.
        package var condition: PlanExpression?
        /// Seconds from the step's start (each attempt) until it ends `timed_out`.
        package var timeout: Int64?
        package var retry: Retry?
        /// Undone by compensation (only deploy steps: `rollback`).
        package var compensate: Compensation?

        package init(
            id: String, action: Action, dependsOn: [String] = [], condition: PlanExpression? = nil,
            timeout: Int64? = nil, retry: Retry? = nil, compensate: Compensation? = nil
        ) {
            self.id = id
            self.action = action
            self.dependsOn = dependsOn
            self.condition = condition
            self.timeout = timeout
            self.retry = retry
            self.compensate = compensate
        }
    }

    /// What a step does.
    package enum Action: Sendable, Equatable {
        /// An ordinary draven job (policy, grants, approvals, lock, dispatch), requested by the
        /// person who started the run.
        case deploy(project: String, environment: String, ref: PlanTemplate, reason: PlanTemplate?)
        /// A diagnostic job (`deploy:info`) on an environment: looks, changes nothing.
        case diagnostic(project: String, environment: String, ref: PlanTemplate?)
        /// `approvals` distinct people, members of any of `groups` (every person with an approve
        /// grant when empty), none of them the person who started the run.
        case approval(approvals: Int, groups: [String])
        /// Succeeds `seconds` after it starts.
        case wait(seconds: Int64)
        /// An HTTP check from the outbox, through draven-deliver.
        case check(Check)
        /// A message on a project's notification channels.
        case notify(project: String, message: PlanTemplate)

        package var type: String {
            switch self {
            case .deploy: "deploy"
            case .diagnostic: "diagnostic"
            case .approval: "approval"
            case .wait: "wait"
            case .check: "check"
            case .notify: "notify"
            }
        }
    }

    /// `{"http": {"url_secret", "expect_status"}, "every", "for"}`: GET the URL (a secret's value:
    /// URLs carry tokens) every `every` seconds; the step succeeds when `for` seconds of answers
    /// with `expectStatus` in a row have passed (or at the first such answer when `for` is 0), and
    /// fails at its timeout.
    package struct Check: Sendable, Equatable {
        package var urlSecret: String
        package var expectStatus: Int
        package var every: Int64
        package var forSeconds: Int64

        package init(urlSecret: String, expectStatus: Int = 200, every: Int64 = 30, forSeconds: Int64 = 0) {
            self.urlSecret = urlSecret
            self.expectStatus = expectStatus
            self.every = every
            self.forSeconds = forSeconds
        }
    }

    /// `{"max_attempts", "backoff": "fixed"|"exponential", "initial", "max", "on": [...]}`.
    package struct Retry: Sendable, Equatable {
        package var maxAttempts: Int
        package var backoff: Backoff
        package var initial: Int64
        package var max: Int64
        /// The causes that are retried; any other failure is final (a policy refusal never retries).
        package var on: [Cause]

        package init(maxAttempts: Int, backoff: Backoff, initial: Int64, max: Int64, on: [Cause]) {
            self.maxAttempts = maxAttempts
            self.backoff = backoff
            self.initial = initial
            self.max = max
            self.on = on
        }

        package enum Backoff: String, Sendable, CaseIterable { case fixed, exponential }

        /// Seconds to wait before attempt `attempt` + 1 (attempts count from 1).
        package func delay(after attempt: Int) -> Int64 {
            switch backoff {
            case .fixed: return Swift.min(initial, max)
            case .exponential:
                var d = initial
                for _ in 1..<Swift.max(attempt, 1) where d < max { d *= 2 }
                return Swift.min(d, max)
            }
        }
    }

    /// Why a step's attempt failed: what `retry.on` lists.
    package enum Cause: String, Sendable, CaseIterable {
        /// The job failed while running (the pipeline said so).
        case failed
        /// The job's lease or the step's timeout ran out.
        case timedOut = "timed_out"
        /// The provider refused or never took the dispatch.
        case dispatchFailed = "dispatch_failed"
        /// A check step's answers were not the expected status.
        case checkFailed = "check_failed"
    }

    package enum Compensation: String, Sendable, CaseIterable { case rollback }
}

/// A string with `${inputs.NAME}` and `${steps.ID.outputs.KEY}` placeholders, filled when the step
/// starts. `$$` is a literal `$`.
package struct PlanTemplate: Sendable, Equatable {
    package enum Part: Sendable, Equatable {
        case text(String)
        /// A dotted path: `["inputs", "ref"]`, `["steps", "stage", "outputs", "url"]`.
        case path([String])
    }

    package var parts: [Part]
    /// The document's text.
    package var source: String

    package init(parts: [Part], source: String) {
        self.parts = parts
        self.source = source
    }
}

/// A condition: comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`), `and`, `or`, `not`, parentheses,
/// string literals in single quotes, integers, `true`/`false`/`null`, and paths: `inputs.NAME`,
/// `steps.ID.result` (`succeeded`, `failed`, `skipped`, `cancelled`, `timed_out`),
/// `steps.ID.attempts`, `steps.ID.outputs.KEY`. Evaluating it runs no code and reads nothing but
/// the scope it is given; a path with no value is `null`.
package indirect enum PlanExpression: Sendable, Equatable {
    case literal(Value)
    case path([String])
    case not(PlanExpression)
    case and(PlanExpression, PlanExpression)
    case or(PlanExpression, PlanExpression)
    case compare(Comparison, PlanExpression, PlanExpression)

    package enum Comparison: String, Sendable, CaseIterable {
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    package enum Value: Sendable, Equatable {
        case null
        case bool(Bool)
        case int(Int64)
        case string(String)
    }
}
