/// The plan a run runs, frozen into its row (`plan_runs.plan`) when it starts: a run keeps the
/// version it started with whatever is applied later, and advancing it reads one row, never the
/// plans table. Structural JSON (expressions as trees, templates as parts), read back only by
/// `init(snapshot:)`; it is not the DSL (that is `Plan.parse`'s, and its canonical form `Plan.json`).
extension Plan {
    package var snapshot: JSON {
        .object([
            "id": .string(id), "version": .int(version), "description": .string(description),
            "on_failure": .string(onFailure.rawValue),
            "inputs": .array(
                inputs.map {
                    [
                        "name": .string($0.name), "type": .string($0.type.rawValue),
                        "pattern": $0.pattern.map(JSON.string) ?? .null,
                        "default": $0.defaultValue.map(JSON.string) ?? .null,
                    ]
                }),
            "steps": .array(steps.map(\.snapshot)),
        ])
    }

    /// - Throws: `SnapshotError` when `json` is not what `snapshot` wrote.
    package init(snapshot json: JSON) throws {
        let s = Snapshot(json)
        try self.init(
            id: s.string("id"), version: s.int("version"), description: s.string("description"),
            inputs: s.array("inputs").map {
                let i = Snapshot($0)
                return Input(
                    name: try i.string("name"), type: try i.raw("type"), pattern: i.optionalString("pattern"),
                    defaultValue: i.optionalString("default"))
            },
            steps: s.array("steps").map(Step.init(snapshot:)), onFailure: s.raw("on_failure"))
    }

    package struct SnapshotError: Error, CustomStringConvertible {
        package var description: String
    }
}

extension Plan.Step {
    var snapshot: JSON {
        var o: JSONObject = [
            "id": .string(id), "depends_on": .array(dependsOn.map(JSON.string)), "action": action.snapshot,
            "condition": condition?.snapshot ?? .null, "timeout": timeout.map(JSON.int) ?? .null,
            "compensate": compensate.map { .string($0.rawValue) } ?? .null,
        ]
        if let retry {
            o["retry"] = [
                "max_attempts": .int(Int64(retry.maxAttempts)), "backoff": .string(retry.backoff.rawValue),
                "initial": .int(retry.initial), "max": .int(retry.max),
                "on": .array(retry.on.map { .string($0.rawValue) }),
            ]
        }
        return .object(o)
    }

    init(snapshot json: JSON) throws {
        let s = Snapshot(json)
        let retry = try json["retry"].map {
            let r = Snapshot($0)
            return Plan.Retry(
                maxAttempts: Int(try r.int("max_attempts")), backoff: try r.raw("backoff"),
                initial: try r.int("initial"),
                max: try r.int("max"), on: try r.array("on").map { try Snapshot.raw($0) })
        }
        self.init(
            id: try s.string("id"), action: try Plan.Action(snapshot: s.value("action")),
            dependsOn: try s.array("depends_on").map { try Snapshot.string($0) },
            condition: try json["condition"].flatMap { $0.isNull ? nil : try PlanExpression(snapshot: $0) },
            timeout: json["timeout"]?.intValue, retry: retry,
            compensate: try json["compensate"].flatMap { $0.isNull ? nil : try Snapshot.raw($0) })
    }
}

extension Plan.Action {
    var snapshot: JSON {
        switch self {
        case .deploy(let project, let environment, let ref, let reason):
            [
                "type": "deploy", "project": .string(project), "environment": .string(environment),
                "ref": ref.snapshot, "reason": reason?.snapshot ?? .null,
            ]
        case .diagnostic(let project, let environment, let ref):
            [
                "type": "diagnostic", "project": .string(project), "environment": .string(environment),
                "ref": ref?.snapshot ?? .null,
            ]
        case .approval(let approvals, let groups):
            ["type": "approval", "approvals": .int(Int64(approvals)), "groups": .array(groups.map(JSON.string))]
        case .wait(let seconds): ["type": "wait", "seconds": .int(seconds)]
        case .check(let c):
            [
                "type": "check", "url_secret": .string(c.urlSecret), "expect_status": .int(Int64(c.expectStatus)),
                "every": .int(c.every), "for": .int(c.forSeconds),
            ]
        case .notify(let project, let message):
            ["type": "notify", "project": .string(project), "message": message.snapshot]
        }
    }

    init(snapshot json: JSON) throws {
        let s = Snapshot(json)
        let template = { (key: String) in try json[key].flatMap { $0.isNull ? nil : try PlanTemplate(snapshot: $0) } }
        switch try s.string("type") {
        case "deploy":
            guard let ref = try template("ref") else { throw Snapshot.bad("ref") }
            self = .deploy(
                project: try s.string("project"), environment: try s.string("environment"), ref: ref,
                reason: try template("reason"))
        case "diagnostic":
            self = .diagnostic(
                project: try s.string("project"), environment: try s.string("environment"), ref: try template("ref"))
        case "approval":
            self = .approval(
                approvals: Int(try s.int("approvals")), groups: try s.array("groups").map { try Snapshot.string($0) })
        case "wait": self = .wait(seconds: try s.int("seconds"))
        case "check":
            self = .check(
                Plan.Check(
                    urlSecret: try s.string("url_secret"), expectStatus: Int(try s.int("expect_status")),
                    every: try s.int("every"), forSeconds: try s.int("for")))
        case "notify":
            guard let message = try template("message") else { throw Snapshot.bad("message") }
            self = .notify(project: try s.string("project"), message: message)
        case let other: throw Snapshot.bad("type \(other)")
        }
    }
}

extension PlanTemplate {
    /// `[source, part, part, …]`: a part is a string (text) or an array of path components.
    var snapshot: JSON {
        .array(
            [.string(source)]
                + parts.map {
                    switch $0 {
                    case .text(let t): .string(t)
                    case .path(let p): .array(p.map(JSON.string))
                    }
                })
    }

    init(snapshot json: JSON) throws {
        guard let all = json.arrayValue, let source = all.first?.stringValue else { throw Snapshot.bad("template") }
        self.init(
            parts: try all.dropFirst().map {
                if let t = $0.stringValue { return .text(t) }
                return .path(try Snapshot.array($0).map { try Snapshot.string($0) })
            }, source: source)
    }
}

extension PlanExpression {
    /// `{"literal": v}`, `{"path": [...]}`, `{"not": e}`, `{"and": [a, b]}`, `{"or": [a, b]}`, `{"==": [a, b]}`.
    var snapshot: JSON {
        switch self {
        case .literal(let v):
            switch v {
            case .null: ["literal": .null]
            case .bool(let b): ["literal": .bool(b)]
            case .int(let i): ["literal": .int(i)]
            case .string(let s): ["literal": .string(s)]
            }
        case .path(let p): ["path": .array(p.map(JSON.string))]
        case .not(let e): ["not": e.snapshot]
        case .and(let a, let b): ["and": [a.snapshot, b.snapshot]]
        case .or(let a, let b): ["or": [a.snapshot, b.snapshot]]
        case .compare(let op, let a, let b): .object([op.rawValue: [a.snapshot, b.snapshot]])
        }
    }

    init(snapshot json: JSON) throws {
        guard let o = json.objectValue, o.count == 1, let (key, value) = o.entries.first else {
            throw Snapshot.bad("expression")
        }
        func pair() throws -> (PlanExpression, PlanExpression) {
            guard let a = value.arrayValue, a.count == 2 else { throw Snapshot.bad("expression \(key)") }
            return (try PlanExpression(snapshot: a[0]), try PlanExpression(snapshot: a[1]))
        }
        switch key {
        case "literal":
            switch value {
            case .null: self = .literal(.null)
            case .bool(let b): self = .literal(.bool(b))
            case .int(let i): self = .literal(.int(i))
            case .string(let s): self = .literal(.string(s))
            default: throw Snapshot.bad("literal")
            }
        case "path": self = .path(try Snapshot.array(value).map { try Snapshot.string($0) })
        case "not": self = .not(try PlanExpression(snapshot: value))
        case "and":
            let (a, b) = try pair()
            self = .and(a, b)
        case "or":
            let (a, b) = try pair()
            self = .or(a, b)
        default:
            guard let op = Comparison(rawValue: key) else { throw Snapshot.bad("expression \(key)") }
            let (a, b) = try pair()
            self = .compare(op, a, b)
        }
    }
}

/// Reads a snapshot's members, throwing `Plan.SnapshotError` naming what is missing.
private struct Snapshot {
    let json: JSON
    init(_ json: JSON) { self.json = json }

    static func bad(_ what: String) -> Plan.SnapshotError {
        Plan.SnapshotError(description: "bad plan snapshot: \(what)")
    }
    func value(_ key: String) throws -> JSON {
        guard let v = json[key] else { throw Self.bad(key) }
        return v
    }
    func string(_ key: String) throws -> String { try Self.string(value(key)) }
    func optionalString(_ key: String) -> String? { json[key]?.stringValue }
    func int(_ key: String) throws -> Int64 {
        guard let i = try value(key).intValue else { throw Self.bad(key) }
        return i
    }
    func array(_ key: String) throws -> [JSON] { try Self.array(value(key)) }
    func raw<T: RawRepresentable>(_ key: String) throws -> T where T.RawValue == String { try Self.raw(value(key)) }
    static func string(_ v: JSON) throws -> String {
        guard let s = v.stringValue else { throw bad("string") }
        return s
    }
    static func array(_ v: JSON) throws -> [JSON] {
        guard let a = v.arrayValue else { throw bad("array") }
        return a
    }
    static func raw<T: RawRepresentable>(_ v: JSON) throws -> T where T.RawValue == String {
        guard let t = T(rawValue: try string(v)) else { throw bad("value \(v.serialized())") }
        return t
    }
}
