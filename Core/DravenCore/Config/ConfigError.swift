/// Why a configuration file was refused: every problem found, each naming the file, the key
/// and why. Nothing is applied when there is one.
package struct ConfigError: Error, CustomStringConvertible, Sendable {
    package struct Problem: Sendable, Equatable {
        package var key: String
        package var reason: String
        package init(key: String, reason: String) {
            self.key = key
            self.reason = reason
        }
    }
    package var file: String
    package var problems: [Problem]

    package init(file: String, problems: [Problem]) {
        self.file = file
        self.problems = problems
    }

    package var description: String {
        problems.map { "\(file): \($0.key.isEmpty ? "(top level)" : $0.key): \($0.reason)" }.joined(separator: "\n")
    }
}

/// Reads one TOML/JSON table, recording problems with their dotted key path and refusing keys
/// it does not know (a typo such as `aprovals` must not silently mean "no approvals").
struct TableReader {
    let object: JSONObject
    let path: String
    private(set) var used: Set<String> = []

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    func key(_ name: String) -> String {
        let quoted = name.isEmpty || name.contains(".") || name.contains(" ") || name == "*" ? "\"\(name)\"" : name
        return path.isEmpty ? quoted : path + "." + quoted
    }

    mutating func value(_ name: String) -> JSON? {
        used.insert(name)
        return object[name]
    }

    mutating func string(_ name: String, _ problems: inout [ConfigError.Problem], required: Bool = false) -> String? {
        guard let v = value(name) else {
            if required { problems.append(.init(key: key(name), reason: "is required")) }
            return nil
        }
        guard let s = v.stringValue, !s.isEmpty else {
            problems.append(.init(key: key(name), reason: "must be a non-empty string"))
            return nil
        }
        return s
    }

    mutating func bool(_ name: String, _ problems: inout [ConfigError.Problem]) -> Bool? {
        guard let v = value(name) else { return nil }
        guard let b = v.boolValue else {
            problems.append(.init(key: key(name), reason: "must be true or false"))
            return nil
        }
        return b
    }

    mutating func int(_ name: String, _ problems: inout [ConfigError.Problem], range: ClosedRange<Int64>) -> Int64? {
        guard let v = value(name) else { return nil }
        guard let i = v.intValue, range.contains(i) else {
            problems.append(
                .init(key: key(name), reason: "must be an integer from \(range.lowerBound) to \(range.upperBound)"))
            return nil
        }
        return i
    }

    mutating func strings(_ name: String, _ problems: inout [ConfigError.Problem]) -> [String]? {
        guard let v = value(name) else { return nil }
        guard let items = v.arrayValue, items.allSatisfy({ ($0.stringValue ?? "").isEmpty == false }) else {
            problems.append(.init(key: key(name), reason: "must be an array of non-empty strings"))
            return nil
        }
        return items.compactMap(\.stringValue)
    }

    /// A size in bytes within `range`: an integer, or a string like `"512KiB"`, `"10MiB"`, `"1GiB"`
    /// (binary units; `KB`, `MB`, `GB` are read as the same, as people write them).
    mutating func size(_ name: String, _ problems: inout [ConfigError.Problem], range: ClosedRange<Int64>)
        -> Int64?
    {
        guard let v = value(name) else { return nil }
        var bytes = v.intValue
        if bytes == nil, let s = v.stringValue {
            let units: [(String, Int64)] = [
                ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20),
                ("GB", 1 << 30), ("B", 1),
            ]
            for (unit, factor) in units where s.hasSuffix(unit) {
                let number = s.dropLast(unit.count)
                if !number.isEmpty, number.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(number),
                    n <= Int64.max / factor
                {
                    bytes = n * factor
                }
                break
            }
        }
        guard let bytes, range.contains(bytes) else {
            problems.append(
                .init(
                    key: key(name),
                    reason: "must be a size from \(range.lowerBound) to \(range.upperBound) bytes, such as \"10MiB\""))
            return nil
        }
        return bytes
    }

    /// A duration: whole seconds, or a string like `90s`, `10m`, `24h`, `7d`.
    mutating func duration(_ name: String, _ problems: inout [ConfigError.Problem]) -> Int64? {
        guard let v = value(name) else { return nil }
        if let i = v.intValue, i > 0 { return i }
        if let s = v.stringValue, let unit = s.last, let n = Int64(s.dropLast()), n > 0 {
            switch unit {
            case "s": return n
            case "m": return n * 60
            case "h": return n * 3600
            case "d": return n * 86400
            default: break
            }
        }
        problems.append(.init(key: key(name), reason: "must be a duration such as \"90s\", \"10m\", \"24h\" or \"7d\""))
        return nil
    }

    mutating func table(_ name: String, _ problems: inout [ConfigError.Problem]) -> JSONObject? {
        guard let v = value(name) else { return nil }
        guard let o = v.objectValue else {
            problems.append(.init(key: key(name), reason: "must be a table"))
            return nil
        }
        return o
    }

    /// Reports every key present but never read.
    func finish(_ problems: inout [ConfigError.Problem]) {
        for k in object.keys where !used.contains(k) {
            problems.append(.init(key: key(k), reason: "is not a known setting"))
        }
    }
}
