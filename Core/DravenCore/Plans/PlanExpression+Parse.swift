/// What a condition or a template reads when it is evaluated: the run's inputs and, for each step
/// that has ended, its result, attempts and outputs. Nothing else is reachable from a plan's text.
package struct PlanScope: Sendable, Equatable {
    package struct Step: Sendable, Equatable {
        package var result: String?
        package var attempts: Int64
        package var outputs: [String: String]

        package init(result: String? = nil, attempts: Int64 = 0, outputs: [String: String] = [:]) {
            self.result = result
            self.attempts = attempts
            self.outputs = outputs
        }
    }

    package var inputs: [String: String]
    package var steps: [String: Step]

    package init(inputs: [String: String] = [:], steps: [String: Step] = [:]) {
        self.inputs = inputs
        self.steps = steps
    }

    /// The value at a path `PlanPath.check` accepted; `null` when it has none.
    package func value(_ path: [String]) -> PlanExpression.Value {
        switch (path.first, path.count) {
        case ("inputs", 2): return inputs[path[1]].map { .string($0) } ?? .null
        case ("steps", 3), ("steps", 4):
            guard let step = steps[path[1]] else { return .null }
            switch path[2] {
            case "result": return step.result.map { .string($0) } ?? .null
            case "attempts": return .int(step.attempts)
            case "outputs" where path.count == 4: return step.outputs[path[3]].map { .string($0) } ?? .null
            default: return .null
            }
        default: return .null
        }
    }
}

/// The paths a condition or a template may name: `inputs.NAME`, `steps.ID.result`,
/// `steps.ID.attempts`, `steps.ID.outputs.KEY`.
enum PlanPath {
    /// Why `path` is not one of the readable paths, or nil when it is.
    static func problem(_ path: [String]) -> String? {
        let text = path.joined(separator: ".")
        switch path.first {
        case "inputs":
            return path.count == 2 ? nil : "\(text): an input is read as inputs.NAME"
        case "steps":
            if path.count == 3, path[2] == "result" || path[2] == "attempts" { return nil }
            if path.count == 4, path[2] == "outputs" { return nil }
            return "\(text): a step is read as steps.ID.result, steps.ID.attempts or steps.ID.outputs.KEY"
        default:
            return "\(text): a path starts with inputs. or steps."
        }
    }

    static func isSegmentByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x5f || c == 0x2d
    }
}

/// Why a condition or a template does not parse: the reason and the byte offset it was found at.
package struct PlanSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    package var offset: Int
    package var reason: String
    package var description: String { "\(reason) (at byte \(offset))" }
}

extension PlanExpression {
    /// Conditions are short: longer text, or deeper nesting, is refused before it is walked.
    package static let maxLength = 1024
    package static let maxDepth = 32

    /// Parses a condition (grammar in the type's doc comment; `not` binds tighter than `and`,
    /// `and` tighter than `or`; a comparison's sides are a literal, a path or a parenthesised
    /// expression, so `a == b == c` is refused). Paths are checked for their shape, not for the
    /// steps and inputs they name (`Plan.parse` does that).
    /// - Throws: `PlanSyntaxError` naming the offset.
    package static func parse(_ text: String) throws(PlanSyntaxError) -> PlanExpression {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxLength else {
            throw PlanSyntaxError(offset: maxLength, reason: "is longer than \(maxLength) bytes")
        }
        var parser = ExpressionParser(tokens: try ExpressionLexer.tokens(bytes))
        let expression = try parser.or(depth: 0)
        guard parser.at < parser.tokens.count else { return expression }
        let token = parser.tokens[parser.at]
        throw PlanSyntaxError(offset: token.offset, reason: "unexpected \(token.kind.text) after a complete condition")
    }

    /// Evaluates against `scope`. Comparisons: `==` and `!=` compare type and value (`1 == '1'` is
    /// false); `<`, `<=`, `>`, `>=` order two integers or two strings (by bytes) and are false for
    /// any other pair. `and`, `or` and `not` read truth: `true`, a non-empty string, a non-zero
    /// integer; `false`, `null`, `''` and `0` are false. The answer of `and`/`or`/`not` is a bool.
    /// `scope` gives a path's value (a run's: `PlanEngine`; a `PlanScope`'s: `evaluate(_: PlanScope)`).
    package func evaluate(_ scope: (_ path: [String]) -> Value) -> Value {
        switch self {
        case .literal(let value): return value
        case .path(let path): return scope(path)
        case .not(let e): return .bool(!e.evaluate(scope).isTrue)
        case .and(let a, let b): return .bool(a.evaluate(scope).isTrue && b.evaluate(scope).isTrue)
        case .or(let a, let b): return .bool(a.evaluate(scope).isTrue || b.evaluate(scope).isTrue)
        case .compare(let op, let a, let b): return .bool(op.holds(a.evaluate(scope), b.evaluate(scope)))
        }
    }

    package func evaluate(_ scope: PlanScope) -> Value { evaluate(scope.value) }

    /// Whether the condition holds in `scope` (its value is true).
    package func holds(_ scope: PlanScope) -> Bool { evaluate(scope).isTrue }

    /// Every path the expression reads, in order of appearance (repeats kept once).
    package var paths: [[String]] {
        var out: [[String]] = []
        func walk(_ e: PlanExpression) {
            switch e {
            case .literal: break
            case .path(let p): if !out.contains(p) { out.append(p) }
            case .not(let x): walk(x)
            case .and(let a, let b), .or(let a, let b), .compare(_, let a, let b):
                walk(a)
                walk(b)
            }
        }
        walk(self)
        return out
    }

    /// The step ids the expression reads (`steps.ID.…`), in order of appearance.
    package var stepsNamed: [String] { Self.names(paths, "steps") }
    /// The input names the expression reads (`inputs.NAME`), in order of appearance.
    package var inputsNamed: [String] { Self.names(paths, "inputs") }

    static func names(_ paths: [[String]], _ root: String) -> [String] {
        var out: [String] = []
        for p in paths where p.first == root && p.count > 1 && !out.contains(p[1]) { out.append(p[1]) }
        return out
    }

    /// The canonical text: single spaces around operators, parentheses only where needed.
    /// `parse(e.source) == e` for every expression `parse` returns.
    package var source: String { text(level: 0) }

    /// 0: or, 1: and, 2: not, 3: comparison, 4: primary.
    private var level: Int {
        switch self {
        case .or: 0
        case .and: 1
        case .not: 2
        case .compare: 3
        case .literal, .path: 4
        }
    }

    private func text(level minimum: Int) -> String {
        let body: String
        switch self {
        case .literal(let v): body = v.source
        case .path(let p): body = p.joined(separator: ".")
        case .not(let e): body = "not " + e.text(level: 2)
        case .and(let a, let b): body = a.text(level: 1) + " and " + b.text(level: 2)
        case .or(let a, let b): body = a.text(level: 0) + " or " + b.text(level: 1)
        case .compare(let op, let a, let b): body = a.text(level: 4) + " \(op.rawValue) " + b.text(level: 4)
        }
        return level < minimum ? "(" + body + ")" : body
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

    /// As a condition writes it: `'it''s'` is not used; quotes and backslashes are escaped with `\`.
    var source: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .string(let s):
            var out = "'"
            for c in s.unicodeScalars {
                if c == "'" || c == "\\" { out.append("\\") }
                out.unicodeScalars.append(c)
            }
            return out + "'"
        }
    }

    /// As a template renders it: the text of a string, the digits of an integer, `true`/`false`;
    /// nothing for `null`.
    package var text: String {
        switch self {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .string(let s): s
        }
    }
}

extension PlanExpression.Comparison {
    func holds(_ a: PlanExpression.Value, _ b: PlanExpression.Value) -> Bool {
        switch self {
        case .equal: return a == b
        case .notEqual: return a != b
        default: break
        }
        let order: Int
        switch (a, b) {
        case (.int(let x), .int(let y)): order = x < y ? -1 : (x == y ? 0 : 1)
        case (.string(let x), .string(let y)):
            order = x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : (x.utf8.elementsEqual(y.utf8) ? 0 : 1)
        default: return false
        }
        switch self {
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        default: return order >= 0
        }
    }
}

struct ExpressionToken {
    enum Kind: Equatable {
        case value(PlanExpression.Value)
        case path([String])
        case op(PlanExpression.Comparison)
        case and, or, not, open, close

        var text: String {
            switch self {
            case .value(let v): "literal \(v.source)"
            case .path(let p): "path \(p.joined(separator: "."))"
            case .op(let o): "'\(o.rawValue)'"
            case .and: "'and'"
            case .or: "'or'"
            case .not: "'not'"
            case .open: "'('"
            case .close: "')'"
            }
        }
    }

    var kind: Kind
    var offset: Int
}

enum ExpressionLexer {
    static func tokens(_ b: [UInt8]) throws(PlanSyntaxError) -> [ExpressionToken] {
        var out: [ExpressionToken] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            let start = i
            func add(_ kind: ExpressionToken.Kind, _ length: Int) {
                out.append(ExpressionToken(kind: kind, offset: start))
                i += length
            }
            let next: UInt8? = i + 1 < b.count ? b[i + 1] : nil
            switch c {
            case 0x20, 0x09, 0x0a, 0x0d: i += 1
            case UInt8(ascii: "("): add(.open, 1)
            case UInt8(ascii: ")"): add(.close, 1)
            case UInt8(ascii: "="), UInt8(ascii: "!"):
                guard next == UInt8(ascii: "=") else {
                    throw PlanSyntaxError(offset: i, reason: "expected '==' or '!='")
                }
                add(.op(c == UInt8(ascii: "=") ? .equal : .notEqual), 2)
            case UInt8(ascii: "<"), UInt8(ascii: ">"):
                let orEqual = next == UInt8(ascii: "=")
                let op: PlanExpression.Comparison =
                    c == UInt8(ascii: "<") ? (orEqual ? .lessOrEqual : .less) : (orEqual ? .greaterOrEqual : .greater)
                add(.op(op), orEqual ? 2 : 1)
            case UInt8(ascii: "'"): out.append(ExpressionToken(kind: .value(.string(try string(b, &i))), offset: start))
            case UInt8(ascii: "-"), 0x30...0x39:
                var j = c == UInt8(ascii: "-") ? i + 1 : i
                let digits = j
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 { j += 1 }
                guard j > digits, let n = Int64(String(decoding: b[i..<j], as: UTF8.self)) else {
                    throw PlanSyntaxError(offset: i, reason: "expected an integer")
                }
                guard j == b.count || !PlanPath.isSegmentByte(b[j]) else {
                    throw PlanSyntaxError(offset: j, reason: "an integer is followed by a letter")
                }
                add(.value(.int(n)), j - i)
            case 0x61...0x7a, 0x41...0x5a:
                var segments: [String] = []
                var j = i
                while true {
                    let s = j
                    while j < b.count, PlanPath.isSegmentByte(b[j]) { j += 1 }
                    guard j > s else { throw PlanSyntaxError(offset: j, reason: "a path has an empty part") }
                    segments.append(String(decoding: b[s..<j], as: UTF8.self))
                    guard j < b.count, b[j] == UInt8(ascii: ".") else { break }
                    j += 1
                }
                let kind: ExpressionToken.Kind
                switch segments.count == 1 ? segments[0] : "" {
                case "and": kind = .and
                case "or": kind = .or
                case "not": kind = .not
                case "true": kind = .value(.bool(true))
                case "false": kind = .value(.bool(false))
                case "null": kind = .value(.null)
                default:
                    if let why = PlanPath.problem(segments) { throw PlanSyntaxError(offset: i, reason: why) }
                    kind = .path(segments)
                }
                add(kind, j - i)
            default:
                throw PlanSyntaxError(offset: i, reason: "unexpected character")
            }
        }
        return out
    }

    /// A single-quoted string from `i` (at the quote); `\'` and `\\` are the only escapes.
    static func string(_ b: [UInt8], _ i: inout Int) throws(PlanSyntaxError) -> String {
        let start = i
        var out: [UInt8] = []
        i += 1
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "'"):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i + 1 < b.count, b[i + 1] == UInt8(ascii: "'") || b[i + 1] == UInt8(ascii: "\\") else {
                    throw PlanSyntaxError(offset: i, reason: "only \\' and \\\\ are escapes in a string")
                }
                out.append(b[i + 1])
                i += 2
            default:
                out.append(b[i])
                i += 1
            }
        }
        throw PlanSyntaxError(offset: start, reason: "a string is not closed")
    }
}

struct ExpressionParser {
    let tokens: [ExpressionToken]
    var at = 0

    var end: Int { tokens.last.map { $0.offset + 1 } ?? 0 }

    func deeper(_ depth: Int) throws(PlanSyntaxError) -> Int {
        guard depth < PlanExpression.maxDepth else {
            throw PlanSyntaxError(
                offset: at < tokens.count ? tokens[at].offset : end,
                reason: "nests deeper than \(PlanExpression.maxDepth) levels")
        }
        return depth + 1
    }

    mutating func take(_ kind: ExpressionToken.Kind) -> Bool {
        guard at < tokens.count, tokens[at].kind == kind else { return false }
        at += 1
        return true
    }

    mutating func or(depth: Int) throws(PlanSyntaxError) -> PlanExpression {
        let d = try deeper(depth)
        var left = try and(depth: d)
        while take(.or) { left = .or(left, try and(depth: d)) }
        return left
    }

    mutating func and(depth: Int) throws(PlanSyntaxError) -> PlanExpression {
        let d = try deeper(depth)
        var left = try not(depth: d)
        while take(.and) { left = .and(left, try not(depth: d)) }
        return left
    }

    mutating func not(depth: Int) throws(PlanSyntaxError) -> PlanExpression {
        let d = try deeper(depth)
        if take(.not) { return .not(try not(depth: d)) }
        let left = try primary(depth: d)
        guard at < tokens.count, case .op(let op) = tokens[at].kind else { return left }
        at += 1
        return .compare(op, left, try primary(depth: d))
    }

    mutating func primary(depth: Int) throws(PlanSyntaxError) -> PlanExpression {
        guard at < tokens.count else { throw PlanSyntaxError(offset: end, reason: "the condition ends early") }
        let token = tokens[at]
        at += 1
        switch token.kind {
        case .value(let v): return .literal(v)
        case .path(let p): return .path(p)
        case .open:
            let inner = try or(depth: try deeper(depth))
            guard take(.close) else {
                throw PlanSyntaxError(offset: at < tokens.count ? tokens[at].offset : end, reason: "expected ')'")
            }
            return inner
        default:
            throw PlanSyntaxError(
                offset: token.offset, reason: "expected a value, a path or '(', got \(token.kind.text)")
        }
    }
}

extension PlanTemplate {
    package static let maxLength = 4096

    /// Parses `${path}` placeholders (the paths conditions read) and `$$` (a literal `$`); any
    /// other `$` is refused, so a typo never renders as text.
    /// - Throws: `PlanSyntaxError` naming the offset.
    package static func parse(_ text: String) throws(PlanSyntaxError) -> PlanTemplate {
        let b = Array(text.utf8)
        guard b.count <= maxLength else {
            throw PlanSyntaxError(offset: maxLength, reason: "is longer than \(maxLength) bytes")
        }
        var parts: [Part] = []
        var literal: [UInt8] = []
        var i = 0
        while i < b.count {
            guard b[i] == UInt8(ascii: "$") else {
                literal.append(b[i])
                i += 1
                continue
            }
            let next: UInt8? = i + 1 < b.count ? b[i + 1] : nil
            if next == UInt8(ascii: "$") {
                literal.append(b[i])
                i += 2
                continue
            }
            guard next == UInt8(ascii: "{") else {
                throw PlanSyntaxError(offset: i, reason: "a '$' starts ${…} (write $$ for a '$')")
            }
            guard let close = b[(i + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                throw PlanSyntaxError(offset: i, reason: "a ${ is not closed")
            }
            let inner = b[(i + 2)..<close]
            let segments = inner.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map {
                String(decoding: $0, as: UTF8.self)
            }
            let clean = segments.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(PlanPath.isSegmentByte) }
            guard clean else {
                throw PlanSyntaxError(offset: i + 2, reason: "${…} holds a dotted path such as inputs.ref")
            }
            if let why = PlanPath.problem(segments) { throw PlanSyntaxError(offset: i + 2, reason: why) }
            if !literal.isEmpty { parts.append(.text(String(decoding: literal, as: UTF8.self))) }
            literal = []
            parts.append(.path(segments))
            i = close + 1
        }
        if !literal.isEmpty { parts.append(.text(String(decoding: literal, as: UTF8.self))) }
        return PlanTemplate(parts: parts, source: text)
    }

    /// The text with each placeholder replaced by its value's text (`null`: nothing).
    package func render(_ scope: (_ path: [String]) -> PlanExpression.Value) -> String {
        parts.map { part in
            switch part {
            case .text(let t): t
            case .path(let p): scope(p).text
            }
        }.joined()
    }

    package func render(_ scope: PlanScope) -> String { render(scope.value) }

    package var paths: [[String]] {
        parts.compactMap { if case .path(let p) = $0 { p } else { nil } }
    }
    package var stepsNamed: [String] { PlanExpression.names(paths, "steps") }
    package var inputsNamed: [String] { PlanExpression.names(paths, "inputs") }
}

/// Durations as plans write them: units `d`, `h`, `m`, `s` in that order, each at most once:
/// `"30s"`, `"10m"`, `"1h30m"`, `"2d"`. Bare integers are refused (is `30` seconds or minutes?).
package enum PlanDuration {
    /// The longest duration a plan may name: 30 days.
    package static let maxSeconds: Int64 = 30 * 86400

    /// Seconds, or nil when `text` is not a duration (or longer than `maxSeconds`).
    package static func parse(_ text: String) -> Int64? {
        let units: [(UInt8, Int64)] = [
            (UInt8(ascii: "d"), 86400), (UInt8(ascii: "h"), 3600), (UInt8(ascii: "m"), 60), (UInt8(ascii: "s"), 1),
        ]
        var next = 0
        var total: Int64 = 0
        var digits: Int64 = 0
        var count = 0
        for c in text.utf8 {
            if c >= 0x30 && c <= 0x39 {
                count += 1
                guard count <= 7 else { return nil }
                digits = digits * 10 + Int64(c - 0x30)
                continue
            }
            guard count > 0, let u = units[next...].firstIndex(where: { $0.0 == c }) else { return nil }
            total += digits * units[u].1
            next = u + 1
            digits = 0
            count = 0
        }
        guard count == 0, next > 0, total <= maxSeconds else { return nil }
        return total
    }

    /// The canonical text of `seconds`: `90` → `"1m30s"`, `0` → `"0s"`.
    package static func format(_ seconds: Int64) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var out = ""
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return out
    }
}
