extension StateMachine {
    /// Checks a job's recorded history (its `created`, `transition` and `ignored` events, oldest
    /// first) against the transition table `JobState.next`: it starts with `created` in
    /// `pending`, each transition leaves the state the job was in for one the table allows, an
    /// `ignored` event names the state the job was in, and the last state is the job's. Each
    /// misstep is reported; later events are checked from the state they claim.
    package struct History: Sendable {
        private var state: JobState?
        private var created = false

        package init() {}

        private var was: String { state?.rawValue ?? "in none" }

        /// Adds one event. Returns what is wrong with it, if anything.
        package mutating func add(event: String, from: String?, to: String?) -> String? {
            switch event {
            case "created":
                defer {
                    created = true
                    state = to.flatMap(JobState.init(rawValue:))
                }
                if created { return "a second `created` event" }
                if from != nil || to != JobState.pending.rawValue {
                    return "created in \(to ?? "no state"), not pending"
                }
                return nil
            case "transition":
                guard let target = to.flatMap(JobState.init(rawValue:)),
                    let source = from.flatMap(JobState.init(rawValue:))
                else {
                    return "a transition from \(from ?? "nothing") to \(to ?? "nothing") names an unknown state"
                }
                defer { state = target }
                guard created else { return "a transition to \(target.rawValue) before `created`" }
                if source != state { return "a transition from \(source.rawValue) while the job was \(was)" }
                if !source.canMove(to: target) {
                    return "\(source.rawValue) → \(target.rawValue) is not a transition the state machine allows"
                }
                return nil
            case "ignored":
                guard created, let from, from == state?.rawValue else {
                    return "an ignored event recorded in \(from ?? "no state") while the job was \(was)"
                }
                return nil
            default:
                return nil  // notes: they change no state
            }
        }

        /// The end of the history, for a job whose row says `state`.
        package func end(state jobState: String) -> String? {
            if !created { return "no `created` event" }
            if state?.rawValue != jobState {
                return "its history ends in \(state?.rawValue ?? "no state") but the job is \(jobState)"
            }
            return nil
        }
    }
}
