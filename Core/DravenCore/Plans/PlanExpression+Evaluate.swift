/// Evaluating conditions and filling templates over a run's scope. Reads nothing but `scope`.
/// (The parser, `PlanExpression.parse` and `PlanTemplate.parse`, is the plan document's.)
extension PlanExpression {
    /// The value of the expression; a path the scope has no value for is `null`. Comparisons of
    /// values of different kinds are false (`!=` true); `<`-like ones compare integers, or strings
    /// by their bytes. `and`, `or` and `not` take `false`, `null`, `0` and `''` as false.
    package func evaluate(_ scope: (_ path: [String]) -> Value) -> Value {
        switch self {
        case .literal(let v): return v
        case .path(let p): return scope(p)
        case .not(let e): return .bool(!e.evaluate(scope).isTrue)
        case .and(let a, let b): return .bool(a.evaluate(scope).isTrue && b.evaluate(scope).isTrue)
        case .or(let a, let b): return .bool(a.evaluate(scope).isTrue || b.evaluate(scope).isTrue)
        case .compare(let op, let a, let b):
            let (x, y) = (a.evaluate(scope), b.evaluate(scope))
            switch op {
            case .equal: return .bool(x == y)
            case .notEqual: return .bool(x != y)
            default:
                let order: Int
                switch (x, y) {
                case (.int(let i), .int(let j)): order = i < j ? -1 : (i == j ? 0 : 1)
                case (.string(let s), .string(let t)):
                    order = s.utf8.lexicographicallyPrecedes(t.utf8) ? -1 : (s.utf8.elementsEqual(t.utf8) ? 0 : 1)
                default: return .bool(false)
                }
                switch op {
                case .less: return .bool(order < 0)
                case .lessOrEqual: return .bool(order <= 0)
                case .greater: return .bool(order > 0)
                default: return .bool(order >= 0)
                }
            }
        }
    }

    /// The step ids the expression reads (`steps.ID.…`), in order of first appearance.
    package var stepsRead: [String] {
        var ids: [String] = []
        func walk(_ e: PlanExpression) {
            switch e {
            case .literal: break
            case .path(let p): if p.count > 1, p[0] == "steps", !ids.contains(p[1]) { ids.append(p[1]) }
            case .not(let a): walk(a)
            case .and(let a, let b), .or(let a, let b), .compare(_, let a, let b):
                walk(a)
                walk(b)
            }
        }
        walk(self)
        return ids
    }
}

extension PlanExpression {
    /// The expression written out again (what a skipped step's reason quotes).
    package var text: String {
        switch self {
        case .literal(let v):
            if case .string(let s) = v { return "'" + s + "'" }
            return v == .null ? "null" : v.text
        case .path(let p): return p.joined(separator: ".")
        case .not(let e): return "not (\(e.text))"
        case .and(let a, let b): return "(\(a.text) and \(b.text))"
        case .or(let a, let b): return "(\(a.text) or \(b.text))"
        case .compare(let op, let a, let b): return "\(a.text) \(op.rawValue) \(b.text)"
        }
    }
}

extension PlanExpression.Value {
    package var isTrue: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .string(let s): !s.isEmpty
        }
    }

    /// As a template writes it: `null` is empty.
    package var text: String {
        switch self {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .string(let s): s
        }
    }
}

extension PlanTemplate {
    package func render(_ scope: (_ path: [String]) -> PlanExpression.Value) -> String {
        parts.map {
            switch $0 {
            case .text(let t): t
            case .path(let p): scope(p).text
            }
        }.joined()
    }
}
