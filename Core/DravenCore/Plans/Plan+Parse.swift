/// Reading a plan document (README, "Deploy plans": every key). Strict: the first problem found
/// is thrown as `DravenError.invalidField` whose pointer (RFC 6901) names the key, and nothing
/// the document does not say is guessed. Checks run in this order, so the problem named is the
/// first of: the document's own keys, each input, each step's keys and values in document
/// order, each trigger, then the steps' graph (unknown and self dependencies, then cycles),
/// then what conditions and templates read, then (`checkStore`) the projects, environments and
/// groups named.
extension Plan {
    package static let maxSteps = 100
    package static let maxInputs = 32
    package static let maxTriggers = 16
    package static let maxApprovals = 10
    package static let maxAttempts = 20

    static let documentFields = ["id", "version", "description", "inputs", "steps", "on_failure", "triggers"]
    static let commonStepFields = ["id", "type", "depends_on", "condition", "timeout", "retry", "compensate"]
    /// Each step type's own fields, and which common ones it takes.
    static let typeFields: [String: (own: [String], common: [String])] = [
        "deploy": (["project", "environment", "ref", "reason"], ["timeout", "retry", "compensate"]),
        "diagnostic": (["project", "environment", "ref"], ["timeout", "retry"]),
        "approval": (["approvals", "approver_groups"], ["timeout"]),
        "wait": (["duration"], []),
        "check": (["http", "every", "for"], ["timeout", "retry"]),
        "notify": (["project", "message"], []),
    ]
    static let stepTypes = ["deploy", "diagnostic", "approval", "wait", "check", "notify"]

    /// The causes a step of each type can fail with, which its `retry.on` may list.
    package static func causes(of type: String) -> [Cause] {
        switch type {
        case "deploy", "diagnostic": [.failed, .timedOut, .dispatchFailed]
        case "check": [.checkFailed, .timedOut]
        default: []
        }
    }

    /// Parses and checks a plan document; with `store`, also `checkStore`.
    /// - Throws: `DravenError.invalidField` naming the key; `.malformed` when it is not an object.
    package static func parse(_ document: JSON, store: Database? = nil) throws -> Plan {
        guard let object = document.objectValue else { throw DravenError.malformed("a plan must be a JSON object") }
        let top = PlanReader(object, "", what: "a plan")
        try top.only(documentFields)
        let id = try top.id("id", plan: true)
        var version: Int64 = 0
        if let v = try top.value("version") {
            guard let n = v.intValue, n >= 1 else {
                throw top.invalid("version", "must be a positive integer (the version this document is)")
            }
            version = n
        }
        let description = try top.string("description", max: 1000) ?? ""
        let inputs = try parseInputs(top)
        let onFailure: OnFailure =
            try top.choice("on_failure", OnFailure.allCases.map(\.rawValue)).map {
                OnFailure(rawValue: $0)!
            } ?? .fail
        guard let stepValues = try top.array("steps", required: true, max: maxSteps), !stepValues.isEmpty else {
            throw top.invalid("steps", "must list at least one step")
        }
        var steps: [Step] = []
        for (i, value) in stepValues.enumerated() {
            let step = try parseStep(value, pointer: "/steps/\(i)")
            if steps.contains(where: { $0.id == step.id }) {
                throw DravenError.invalidField(pointer: "/steps/\(i)/id", reason: "repeats the step id \(step.id)")
            }
            steps.append(step)
        }
        var triggers: [Trigger] = []
        for (i, value) in (try top.array("triggers", required: false, max: maxTriggers) ?? []).enumerated() {
            triggers.append(try parseTrigger(value, pointer: "/triggers/\(i)", inputs: inputs))
        }
        let plan = Plan(
            id: id, version: version, description: description, inputs: inputs, steps: steps, onFailure: onFailure,
            triggers: triggers)
        try plan.checkGraph()
        try plan.checkReferences()
        if let store { try plan.checkStore(store) }
        return plan
    }

    static func parseInputs(_ top: PlanReader) throws -> [Input] {
        guard let object = try top.object("inputs") else { return [] }
        guard object.count <= maxInputs else { throw top.invalid("inputs", "declares more than \(maxInputs) inputs") }
        var inputs: [Input] = []
        for (name, value) in object.entries {
            let pointer = "/inputs/" + PlanReader.escape(name)
            guard PlanReader.isInputName(name) else {
                throw DravenError.invalidField(
                    pointer: pointer, reason: "an input name is [a-z][a-z0-9_]{0,63} (read as inputs.NAME)")
            }
            guard let fields = value.objectValue else {
                throw DravenError.invalidField(pointer: pointer, reason: "must be an object ({\"type\": …})")
            }
            let r = PlanReader(fields, pointer, what: "an input")
            try r.only(["type", "pattern", "default"])
            let type = Input.Kind(rawValue: try r.choice("type", Input.Kind.allCases.map(\.rawValue), required: true)!)!
            let pattern = try r.string("pattern", max: 255, nonEmpty: true)
            let value = try r.string("default", max: 255)
            if let value, let pattern, !Policy.glob(pattern, matches: value) {
                throw r.invalid("default", "does not match the input's pattern \(pattern)")
            }
            if let value, type != .string, value.isEmpty {
                throw r.invalid("default", "must not be empty for a \(type.rawValue)")
            }
            inputs.append(Input(name: name, type: type, pattern: pattern, defaultValue: value))
        }
        return inputs
    }

    static func parseStep(_ value: JSON, pointer: String) throws -> Step {
        guard let object = value.objectValue else {
            throw DravenError.invalidField(pointer: pointer, reason: "must be an object (a step)")
        }
        let r = PlanReader(object, pointer, what: "a step")
        let type = try r.choice("type", stepTypes, required: true)!
        let fields = typeFields[type]!
        for key in object.keys where !fields.own.contains(key) && !commonStepFields.contains(key) {
            let all = (commonStepFields + typeFields.values.flatMap(\.own))
            let why =
                all.contains(key)
                ? "is not a field of a \(type) step" : "is not a field of a step"
            throw r.invalid(key, why + " (\(fieldList(type)))")
        }
        if object["compensate"] != nil && !fields.common.contains("compensate") {
            throw r.invalid("compensate", "a \(type) step cannot be compensated (only deploy steps: rollback)")
        }
        for key in ["timeout", "retry"] where object[key] != nil && !fields.common.contains(key) {
            throw r.invalid(key, "is not a field of a \(type) step (\(fieldList(type)))")
        }
        let id = try r.id("id", plan: false)
        var dependsOn: [String] = []
        for (i, d) in (try r.array("depends_on", required: false, max: maxSteps) ?? []).enumerated() {
            guard let name = d.stringValue else {
                throw DravenError.invalidField(pointer: "\(pointer)/depends_on/\(i)", reason: "must be a step id")
            }
            guard !dependsOn.contains(name) else {
                throw DravenError.invalidField(pointer: "\(pointer)/depends_on/\(i)", reason: "repeats \(name)")
            }
            dependsOn.append(name)
        }
        let condition = try r.string("condition", max: PlanExpression.maxLength * 2).map { text in
            do { return try PlanExpression.parse(text) } catch {
                throw r.invalid("condition", "does not parse: \(error)")
            }
        }
        let timeout = try r.duration("timeout")
        let retry = try parseRetry(r, type: type)
        let compensate = try r.choice("compensate", Compensation.allCases.map(\.rawValue)).map {
            Compensation(rawValue: $0)!
        }
        let action = try parseAction(r, type: type)
        return Step(
            id: id, action: action, dependsOn: dependsOn, condition: condition, timeout: timeout, retry: retry,
            compensate: compensate)
    }

    static func fieldList(_ type: String) -> String {
        let f = typeFields[type]!
        return (["id", "type", "depends_on", "condition"] + f.common + f.own).joined(separator: ", ")
    }

    static func parseAction(_ r: PlanReader, type: String) throws -> Action {
        switch type {
        case "deploy":
            return .deploy(
                project: try r.name("project"), environment: try r.name("environment"),
                ref: try r.template("ref", required: true)!, reason: try r.template("reason", required: false))
        case "diagnostic":
            return .diagnostic(
                project: try r.name("project"), environment: try r.name("environment"),
                ref: try r.template("ref", required: false))
        case "approval":
            var approvals = 1
            if let v = try r.value("approvals") {
                guard let n = v.intValue, n >= 1, n <= Int64(maxApprovals) else {
                    throw r.invalid("approvals", "must be an integer from 1 to \(maxApprovals)")
                }
                approvals = Int(n)
            }
            var groups: [String] = []
            for (i, g) in (try r.array("approver_groups", required: false, max: 32) ?? []).enumerated() {
                guard let name = g.stringValue, PlanReader.isName(name) else {
                    throw DravenError.invalidField(
                        pointer: r.pointer + "/approver_groups/\(i)", reason: "must be a group's name")
                }
                guard !groups.contains(name) else {
                    throw DravenError.invalidField(
                        pointer: r.pointer + "/approver_groups/\(i)", reason: "repeats \(name)")
                }
                groups.append(name)
            }
            return .approval(approvals: approvals, groups: groups)
        case "wait":
            return .wait(seconds: try r.duration("duration", required: true)!)
        case "check":
            let http = try r.object("http", required: true)!
            let h = PlanReader(http, r.pointer + "/http", what: "a check's http")
            try h.only(["url_secret", "expect_status"])
            let secret = try h.name("url_secret")
            var status = 200
            if let v = try h.value("expect_status") {
                guard let n = v.intValue, n >= 100, n <= 599 else {
                    throw h.invalid("expect_status", "must be an HTTP status from 100 to 599")
                }
                status = Int(n)
            }
            let every = try r.duration("every") ?? 30
            let forSeconds = try r.duration("for", zero: true) ?? 0
            return .check(Check(urlSecret: secret, expectStatus: status, every: every, forSeconds: forSeconds))
        default:
            return .notify(project: try r.name("project"), message: try r.template("message", required: true)!)
        }
    }

    static func parseRetry(_ step: PlanReader, type: String) throws -> Retry? {
        guard let object = try step.object("retry") else { return nil }
        let r = PlanReader(object, step.pointer + "/retry", what: "a retry")
        try r.only(["max_attempts", "backoff", "initial", "max", "on"])
        guard let v = try r.value("max_attempts", required: true), let n = v.intValue, n >= 2,
            n <= Int64(maxAttempts)
        else {
            throw r.invalid("max_attempts", "must be an integer from 2 to \(maxAttempts) (the first attempt counts)")
        }
        let backoff =
            try r.choice("backoff", Retry.Backoff.allCases.map(\.rawValue)).map {
                Retry.Backoff(rawValue: $0)!
            } ?? .exponential
        let initial = try r.duration("initial") ?? 30
        let max = try r.duration("max") ?? Swift.max(initial, 600)
        guard max >= initial else { throw r.invalid("max", "must not be shorter than initial") }
        let allowed = causes(of: type)
        var on: [Cause] = []
        guard let list = try r.array("on", required: true, max: 8), !list.isEmpty else {
            throw r.invalid("on", "must list the causes to retry (\(allowed.map(\.rawValue).joined(separator: ", ")))")
        }
        for (i, c) in list.enumerated() {
            let p = r.pointer + "/on/\(i)"
            guard let text = c.stringValue, let cause = Cause(rawValue: text) else {
                let known = Cause.allCases.map(\.rawValue).joined(separator: ", ")
                throw DravenError.invalidField(pointer: p, reason: "is not a cause (\(known))")
            }
            guard allowed.contains(cause) else {
                let names = allowed.map(\.rawValue).joined(separator: ", ")
                throw DravenError.invalidField(pointer: p, reason: "a \(type) step cannot fail with \(text) (\(names))")
            }
            guard !on.contains(cause) else { throw DravenError.invalidField(pointer: p, reason: "repeats \(text)") }
            on.append(cause)
        }
        return Retry(maxAttempts: Int(n), backoff: backoff, initial: initial, max: max, on: on)
    }

    static func parseTrigger(_ value: JSON, pointer: String, inputs: [Input]) throws -> Trigger {
        guard let object = value.objectValue else {
            throw DravenError.invalidField(pointer: pointer, reason: "must be an object ({\"on\": \"push\", …})")
        }
        let r = PlanReader(object, pointer, what: "a trigger")
        try r.only(["on", "project", "tag", "branch", "input", "run_as"])
        _ = try r.choice("on", ["push"], required: true)
        let project = try r.name("project")
        let tag = try r.string("tag", max: 255, nonEmpty: true)
        let branch = try r.string("branch", max: 255, nonEmpty: true)
        guard (tag == nil) != (branch == nil) else {
            throw r.invalid(tag == nil ? "tag" : "branch", "a trigger names either tag or branch (a glob), not both")
        }
        let kind: Input.Kind = tag != nil ? .tag : .branch
        let name: String
        if let given = try r.string("input", max: 64) {
            guard let input = inputs.first(where: { $0.name == given }) else {
                throw r.invalid("input", "names no input of the plan")
            }
            guard input.type == kind || input.type == .string else {
                throw r.invalid("input", "is a \(input.type.rawValue) input; a \(kind.rawValue) push cannot fill it")
            }
            name = given
        } else {
            guard let first = inputs.first else {
                throw r.invalid("on", "a push fills an input: declare one (the first input is used)")
            }
            guard first.type == kind || first.type == .string else {
                throw r.invalid(
                    kind.rawValue, "the plan's first input \(first.name) is a \(first.type.rawValue); name an input")
            }
            name = first.name
        }
        // Last, so that the documents refused for the keys above are refused for them.
        let runAs = try r.name("run_as")
        return Trigger(project: project, refKind: kind, pattern: tag ?? branch!, input: name, runAs: runAs)
    }

    // MARK: - across steps

    /// Unknown and self dependencies, then cycles (named: `stage → prod → stage`).
    func checkGraph() throws {
        for (i, step) in steps.enumerated() {
            for (j, d) in step.dependsOn.enumerated() {
                let pointer = "/steps/\(i)/depends_on/\(j)"
                if d == step.id {
                    throw DravenError.invalidField(pointer: pointer, reason: "a step cannot depend on itself")
                }
                guard self.step(d) != nil else {
                    throw DravenError.invalidField(pointer: pointer, reason: "names no step of the plan (\(d))")
                }
            }
        }
        let index = Dictionary(uniqueKeysWithValues: steps.enumerated().map { ($1.id, $0) })
        // 0: not seen, 1: on the path, 2: done.
        var mark = [Int](repeating: 0, count: steps.count)
        var path: [Int] = []
        func visit(_ i: Int) throws {
            mark[i] = 1
            path.append(i)
            for (j, d) in steps[i].dependsOn.enumerated() {
                let k = index[d]!
                if mark[k] == 1 {
                    let cycle = path[path.firstIndex(of: k)!...].map { steps[$0].id } + [d]
                    throw DravenError.invalidField(
                        pointer: "/steps/\(i)/depends_on/\(j)",
                        reason: "makes a cycle: " + cycle.joined(separator: " → "))
                }
                if mark[k] == 0 { try visit(k) }
            }
            path.removeLast()
            mark[i] = 2
        }
        for i in steps.indices where mark[i] == 0 { try visit(i) }
    }

    /// Every step `id` depends on, directly or through others.
    package func ancestors(of id: String) -> Set<String> {
        var seen: Set<String> = []
        var todo = step(id)?.dependsOn ?? []
        while let next = todo.popLast() {
            guard seen.insert(next).inserted else { continue }
            todo += step(next)?.dependsOn ?? []
        }
        return seen
    }

    /// What conditions and templates read: declared inputs, and steps that end before the step
    /// starts (its transitive dependencies).
    func checkReferences() throws {
        let names = Set(inputs.map(\.name))
        for (i, step) in steps.enumerated() {
            let before = ancestors(of: step.id)
            func check(_ key: String, inputs read: [String], steps reads: [String]) throws {
                let pointer = "/steps/\(i)/\(key)"
                for name in read where !names.contains(name) {
                    throw DravenError.invalidField(pointer: pointer, reason: "reads inputs.\(name): no such input")
                }
                for s in reads where !before.contains(s) {
                    let why =
                        self.step(s) == nil
                        ? "reads steps.\(s): no such step"
                        : "reads steps.\(s), which is not a dependency of \(step.id) (it may not have ended)"
                    throw DravenError.invalidField(pointer: pointer, reason: why)
                }
            }
            if let c = step.condition { try check("condition", inputs: c.inputsNamed, steps: c.stepsNamed) }
            for (key, template) in step.action.templates {
                try check(key, inputs: template.inputsNamed, steps: template.stepsNamed)
            }
        }
    }

    /// Every environment the plan's deploy and diagnostic steps act on, each once, with the
    /// pointer of the first step naming it: what applying the plan needs a `deploy` grant on.
    package var targets: [(project: String, environment: String, pointer: String)] {
        var out: [(project: String, environment: String, pointer: String)] = []
        for (i, step) in steps.enumerated() {
            let named: (String, String)?
            switch step.action {
            case .deploy(let p, let e, _, _), .diagnostic(let p, let e, _): named = (p, e)
            default: named = nil
            }
            guard let (p, e) = named, !out.contains(where: { $0.project == p && $0.environment == e }) else {
                continue
            }
            out.append((p, e, "/steps/\(i)"))
        }
        return out
    }

    /// That what the plan names exists now: each deploy and diagnostic step's project and
    /// environment, each notify step's and trigger's project, each approval step's groups.
    /// A plan naming something unknown is an invalid document (422 naming the key), not a
    /// missing resource: the route exists; the document is what is wrong. `POST /api/v1/plans`
    /// checks grants first, so a caller without them learns nothing of what exists.
    /// - Throws: `DravenError.invalidField`.
    package func checkStore(_ db: Database) throws {
        func project(_ name: String, _ pointer: String) throws {
            do { _ = try Target.project(db, name) } catch DravenError.notFound {
                throw DravenError.invalidField(pointer: pointer, reason: "names no project (\(name))")
            }
        }
        for (i, step) in steps.enumerated() {
            let at = "/steps/\(i)"
            switch step.action {
            case .deploy(let p, let e, _, _), .diagnostic(let p, let e, _):
                try project(p, at + "/project")
                do { _ = try Target.find(db, project: p, environment: e) } catch DravenError.notFound {
                    throw DravenError.invalidField(
                        pointer: at + "/environment", reason: "names no environment of project \(p) (\(e))")
                }
            case .notify(let p, _): try project(p, at + "/project")
            case .approval(_, let groups):
                for (j, g) in groups.enumerated() where try !Grants.groupExists(db, g) {
                    throw DravenError.invalidField(
                        pointer: at + "/approver_groups/\(j)", reason: "names no group (\(g))")
                }
            default: break
            }
        }
        for (i, trigger) in triggers.enumerated() {
            try project(trigger.project, "/triggers/\(i)/project")
            guard try People.enabledID(db, handle: trigger.runAs) != nil else {
                throw DravenError.invalidField(
                    pointer: "/triggers/\(i)/run_as", reason: "names no person who may sign in (\(trigger.runAs))")
            }
        }
    }
}

extension Plan.Action {
    /// The action's templates by key, in document order.
    package var templates: [(String, PlanTemplate)] {
        switch self {
        case .deploy(_, _, let ref, let reason): [("ref", ref)] + (reason.map { [("reason", $0)] } ?? [])
        case .diagnostic(_, _, let ref): ref.map { [("ref", $0)] } ?? []
        case .notify(_, let message): [("message", message)]
        default: []
        }
    }
}

/// One object of a plan document, read key by key; every refusal names its pointer.
struct PlanReader {
    let object: JSONObject
    let pointer: String
    let what: String

    init(_ object: JSONObject, _ pointer: String, what: String) {
        self.object = object
        self.pointer = pointer
        self.what = what
    }

    static func escape(_ key: String) -> String {
        var out = ""
        for c in key {
            switch c {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.append(c)
            }
        }
        return out
    }

    func invalid(_ key: String, _ reason: String) -> DravenError {
        .invalidField(pointer: pointer + "/" + Self.escape(key), reason: reason)
    }

    func only(_ fields: [String]) throws {
        for key in object.keys where !fields.contains(key) {
            throw invalid(key, "is not a field of \(what) (\(fields.joined(separator: ", ")))")
        }
    }

    func value(_ key: String, required: Bool = false) throws -> JSON? {
        guard let v = object[key], !v.isNull else {
            if required { throw invalid(key, "is required") }
            return nil
        }
        return v
    }

    func string(_ key: String, max: Int, nonEmpty: Bool = false, required: Bool = false) throws -> String? {
        guard let v = try value(key, required: required) else { return nil }
        guard let s = v.stringValue else { throw invalid(key, "must be a string") }
        if nonEmpty && s.isEmpty { throw invalid(key, "must not be empty") }
        guard s.utf8.count <= max else { throw invalid(key, "is longer than \(max) bytes") }
        return s
    }

    func choice(_ key: String, _ values: [String], required: Bool = false) throws -> String? {
        guard let v = try value(key, required: required) else { return nil }
        guard let s = v.stringValue, values.contains(s) else {
            throw invalid(key, "must be one of " + values.joined(separator: ", "))
        }
        return s
    }

    func array(_ key: String, required: Bool, max: Int) throws -> [JSON]? {
        guard let v = try value(key, required: required) else { return nil }
        guard let a = v.arrayValue else { throw invalid(key, "must be an array") }
        guard a.count <= max else { throw invalid(key, "lists more than \(max)") }
        return a
    }

    func object(_ key: String, required: Bool = false) throws -> JSONObject? {
        guard let v = try value(key, required: required) else { return nil }
        guard let o = v.objectValue else { throw invalid(key, "must be an object") }
        return o
    }

    /// A duration string (`PlanDuration`); `zero` allows `"0s"`.
    func duration(_ key: String, required: Bool = false, zero: Bool = false) throws -> Int64? {
        guard let v = try value(key, required: required) else { return nil }
        guard let s = v.stringValue, let seconds = PlanDuration.parse(s), zero || seconds > 0 else {
            let integer = v.intValue != nil ? " (a bare number has no unit)" : ""
            throw invalid(key, "must be a duration such as \"30s\", \"10m\", \"1h30m\" or \"2d\"" + integer)
        }
        return seconds
    }

    /// A plan id (`[a-z0-9][a-z0-9._-]{0,63}`) or a step id (the same without `.`).
    func id(_ key: String, plan: Bool) throws -> String {
        let s = try string(key, max: 1000, required: true)!
        let b = Array(s.utf8)
        let ok =
            !b.isEmpty && b.count <= 64 && Self.isLowerAlnum(b[0])
            && b.allSatisfy { Self.isLowerAlnum($0) || $0 == 0x5f || $0 == 0x2d || (plan && $0 == 0x2e) }
        guard ok else {
            throw invalid(
                key, plan ? "a plan id is [a-z0-9][a-z0-9._-]{0,63}" : "a step id is [a-z0-9][a-z0-9_-]{0,63}")
        }
        return s
    }

    /// A required name of something configured (a project, an environment, a secret).
    func name(_ key: String) throws -> String {
        let s = try string(key, max: 64, nonEmpty: true, required: true)!
        guard Self.isName(s) else { throw invalid(key, "may contain only letters, digits, '.', '_' and '-'") }
        return s
    }

    func template(_ key: String, required: Bool) throws -> PlanTemplate? {
        guard let s = try string(key, max: PlanTemplate.maxLength * 2, nonEmpty: required, required: required) else {
            return nil
        }
        do { return try PlanTemplate.parse(s) } catch { throw invalid(key, "does not parse: \(error)") }
    }

    static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) }

    static func isName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy { PlanPath.isSegmentByte($0) || $0 == 0x2e }
    }

    static func isInputName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        return !b.isEmpty && b.count <= 64 && b[0] >= 0x61 && b[0] <= 0x7a
            && b.allSatisfy { Self.isLowerAlnum($0) || $0 == 0x5f }
    }
}
