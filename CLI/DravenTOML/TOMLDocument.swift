package import DravenCore
import TOMLKit

/// A TOML configuration read into the JSON tree `Config.validate` checks (the CLI's `draven apply`;
/// a library of its own so the fuzz target `toml` runs this very code).
package enum TOMLDocument {
    /// TOMLKit (toml++) writes the document as JSON, which draven's parser reads.
    /// - Throws: `ConfigError` naming the line and column of a TOML syntax error, or the key of a
    ///   value that has no JSON form: toml++ writes `nan`, `inf` and `0x`/`0o`/`0b` integers as
    ///   they are, which is not JSON (found by the fuzz target: the user was told "unexpected
    ///   character at byte N" of a text they never saw).
    package static func parse(_ source: String, file: String) throws(ConfigError) -> JSON {
        if let line = unnamedTableHeader(Array(source.utf8)) {
            throw problem("line \(line)", "is not valid TOML: a table header needs a name", file)
        }
        let text: String
        do {
            text = try TOMLTable(string: source).convert(to: .json)
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw problem("line \(at.line), column \(at.column)", "is not valid TOML: \(error.description)", file)
        } catch {
            throw problem("", "is not valid TOML: \(error)", file)
        }
        do {
            return try JSON.parse(text)
        } catch {
            let (key, value) = member(at: error.offset, in: Array(text.utf8))
            throw problem(key, "is \(value): write numbers in decimal, and finite", file)
        }
    }

    static func problem(_ key: String, _ reason: String, _ file: String) -> ConfigError {
        ConfigError(file: file, problems: [.init(key: key, reason: reason)])
    }

    /// The line of the first table header whose name does not start with a key character or a
    /// quote (`[` then the end of the line): toml++ 3.4 (TOMLKit 0.6) asserts on it — `draven apply`
    /// aborted (SIGABRT, in release builds too) instead of naming the line. Found by the fuzz target
    /// `toml`. A header is a `[` where a statement starts: not inside a value (an array spanning
    /// lines, strings of any kind) nor a comment.
    static func unnamedTableHeader(_ s: [UInt8]) -> Int? {
        var i = 0, line = 1, depth = 0
        var statementStart = true  // only spaces since the last newline outside a value
        func at(_ k: Int) -> UInt8 { k < s.count ? s[k] : 0 }
        func isKeyStart(_ c: UInt8) -> Bool {
            (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || (0x30...0x39).contains(c)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case 10:
                line += 1; i += 1
                if depth == 0 { statementStart = true }
                continue
            case 32, 9, 13:
                i += 1; continue
            case UInt8(ascii: "#"):
                while i < s.count && s[i] != 10 { i += 1 }
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let triple = at(i + 1) == c && at(i + 2) == c
                i += triple ? 3 : 1
                while i < s.count {
                    if s[i] == 10 { if !triple { break }; line += 1 }
                    if c == UInt8(ascii: "\"") && s[i] == UInt8(ascii: "\\") { i += 2; continue }
                    if s[i] == c && (!triple || (at(i + 1) == c && at(i + 2) == c)) {
                        i += triple ? 3 : 1
                        while triple && at(i) == c { i += 1 }  // up to two quotes may end the content
                        break
                    }
                    i += 1
                }
            case UInt8(ascii: "["):
                if statementStart && depth == 0 {
                    var k = i + 1
                    if at(k) == UInt8(ascii: "[") { k += 1 }
                    while at(k) == 32 || at(k) == 9 { k += 1 }
                    if k < s.count, s[k] != UInt8(ascii: "]"), s[k] != UInt8(ascii: "["), !isKeyStart(s[k]) {
                        return line
                    }
                    while i < s.count && s[i] != 10 { i += 1 }  // the rest of the header's line, and its comment
                    continue
                }
                depth += 1; i += 1
            case UInt8(ascii: "{"):
                depth += 1; i += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1); i += 1
            default:
                i += 1
            }
            statementStart = false
        }
        return nil
    }

    /// The dotted key and the value text of the member on the line holding `offset` in toml++'s
    /// JSON, which puts every member on its own line, indented by its depth.
    static func member(at offset: Int, in text: [UInt8]) -> (key: String, value: String) {
        var path: [(indent: Int, key: String)] = []
        var start = 0
        while start < text.count {
            let end = text[start...].firstIndex(of: 10) ?? text.count
            let line = text[start..<end]
            let indent = line.prefix { $0 == 32 }.count
            let body = line.dropFirst(indent)
            var key: String?
            var rest = body
            if body.first == UInt8(ascii: "\""), let colon = body.firstRange(of: Array("\" : ".utf8)) {
                key = (try? JSON.parse(Array(body[body.startIndex...colon.lowerBound])))?.stringValue
                rest = body[colon.upperBound...]
            }
            while let last = path.last, last.indent >= indent { path.removeLast() }
            if offset < end || end == text.count {
                let keys = path.map(\.key) + (key.map { [$0] } ?? [])
                var value = rest
                while let c = value.last, c == UInt8(ascii: ",") || c == 32 { value = value.dropLast() }
                return (keys.joined(separator: "."), String(decoding: value.prefix(40), as: UTF8.self))
            }
            if let key { path.append((indent, key)) }
            start = end + 1
        }
        return ("", "")
    }
}
