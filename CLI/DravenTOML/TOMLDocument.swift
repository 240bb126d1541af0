package import DravenCore
import Glibc
import TOMLKit

/// A TOML configuration read into the JSON tree `Config.validate` checks (the CLI's `draven apply`;
/// a library of its own so the fuzz target `toml` runs this very code).
package enum TOMLDocument {
    /// TOMLKit (toml++) writes the document as JSON, which draven's parser reads.
    /// - Throws: `ConfigError` naming the line (and column) of a TOML syntax error, or the key of a
    ///   value that has no JSON form: toml++ writes `nan`, `inf` and `0x`/`0o`/`0b` integers as
    ///   they are, which is not JSON (found by the fuzz target: the user was told "unexpected
    ///   character at byte N" of a text they never saw).
    package static func parse(_ source: String, file: String) throws(ConfigError) -> JSON {
        if let (line, why) = unreadable(Array(source.utf8)) {
            throw problem("line \(line)", "is not valid TOML: \(why)", file)
        }
        let text = try convert(source, file: file)
        do {
            return try JSON.parse(text)
        } catch {
            let (key, value) = member(at: error.offset, in: Array(text.utf8))
            throw problem(key, "is \(value): write numbers in decimal, and finite", file)
        }
    }

    /// toml++'s JSON for `source`. toml++ 3.4 asserts on some malformed documents (the fuzz target
    /// `toml` found `a=1979-05-27T:`; `unreadable` screens the ones known): it parses in a child
    /// process, so an abort there is a refusal here, not the end of `draven apply`. (In the fuzz
    /// build it parses in process, with toml++'s assertions off, for the sanitizers to see.)
    static func convert(_ source: String, file: String) throws(ConfigError) -> String {
        #if DRAVEN_FUZZ
            let answer = parseInProcess(source)
        #else
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw problem("", "cannot be read: pipe failed (errno \(errno))", file) }
            let pid = fork()
            if pid == 0 {
                close(fds[0])
                signal(SIGABRT, SIG_DFL)  // no backtrace: the parent reports the refusal
                let null = open("/dev/null", O_WRONLY)
                if null >= 0 { dup2(null, 2) }  // toml++'s assertion message names its own source, not the file
                let out = parseInProcess(source)
                var done = 0
                while done < out.count {
                    let n = out[done...].withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
                    if n <= 0 { _exit(1) }
                    done += n
                }
                _exit(0)
            }
            close(fds[1])
            var answer: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                answer += buffer[..<n]
            }
            close(fds[0])
            var status: Int32 = 0
            while pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard pid > 0, status == 0, !answer.isEmpty else {
                throw problem(
                    "",
                    "is not valid TOML: the TOML parser (toml++) gave up on it (status \(status)); "
                        + "check the syntax, dates and times in particular", file)
            }
        #endif
        let rest = String(decoding: answer.dropFirst(), as: UTF8.self)
        switch answer.first {
        case 0: return rest
        case 1:
            let parts = rest.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            throw problem("line \(parts[0]), column \(parts[1])", "is not valid TOML: \(parts[2])", file)
        default: throw problem("", "is not valid TOML: \(rest)", file)
        }
    }

    /// The answer of `convert` as bytes: 0 and the JSON, 1 and "line\tcolumn\twhy", or 2 and why.
    static func parseInProcess(_ source: String) -> [UInt8] {
        do {
            return [0] + Array(try TOMLTable(string: source).convert(to: .json).utf8)
        } catch let error as TOMLParseError {
            return [1] + Array("\(error.source.begin.line)\t\(error.source.begin.column)\t\(error.description)".utf8)
        } catch {
            return [2] + Array("\(error)".utf8)
        }
    }

    static func problem(_ key: String, _ reason: String, _ file: String) -> ConfigError {
        ConfigError(file: file, problems: [.init(key: key, reason: reason)])
    }

    /// The first place toml++ 3.4 (TOMLKit 0.6) must not see, with why; nil for any valid TOML.
    /// Found by the fuzz target `toml`: a table header without a name (`[` then the end of the
    /// line) trips an assertion — `draven apply` died of SIGABRT, release builds too — and a
    /// non-ASCII character outside strings and comments (where TOML allows none) reaches
    /// `__builtin_unreachable` in its whitespace test (undefined behaviour). A header is a `[`
    /// where a statement starts: not inside a value (an array spanning lines, strings) nor a comment.
    static func unreadable(_ s: [UInt8]) -> (line: Int, reason: String)? {
        var i = 0
        var line = 1
        var depth = 0
        var statementStart = true  // only spaces since the last newline outside a value
        var previous = UInt8(ascii: "=")  // the last character outside spaces, newlines and comments
        func at(_ k: Int) -> UInt8 { k < s.count ? s[k] : 0 }
        func isKeyStart(_ c: UInt8) -> Bool {
            (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || (0x30...0x39).contains(c)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case 10:
                line += 1
                i += 1
                if depth == 0 { statementStart = true }
                continue
            case 32, 9, 13:
                i += 1
                continue
            case UInt8(ascii: "#"):
                while i < s.count && s[i] != 10 { i += 1 }
                continue
            // A string starts a value or a key: after `=`, `[`, `,`, `{`, `.` or at a statement's start
            // (elsewhere, in `a=7'…`, toml++ reads the quote as part of the value, not a string).
            case _
            where (c == UInt8(ascii: "\"") || c == UInt8(ascii: "'"))
                && (statementStart || Array("=[,{.".utf8).contains(previous)):
                let triple = at(i + 1) == c && at(i + 2) == c
                i += triple ? 3 : 1
                while i < s.count {
                    if s[i] == 10 {
                        if !triple { break }
                        line += 1
                    }
                    if c == UInt8(ascii: "\"") && s[i] == UInt8(ascii: "\\") {
                        i += 2
                        continue
                    }
                    if s[i] == c && (!triple || (at(i + 1) == c && at(i + 2) == c)) {
                        i += triple ? 3 : 1
                        while triple && at(i) == c { i += 1 }  // up to two quotes may end the content
                        break
                    }
                    i += 1
                }
            case UInt8(ascii: "[") where statementStart && depth == 0:
                var k = i + 1
                let arrayOfTables = at(k) == UInt8(ascii: "[")
                if arrayOfTables { k += 1 }
                while at(k) == 32 || at(k) == 9 { k += 1 }
                // toml++ itself refuses `[]` and `[ [` (brackets apart); a third `[` reaches the assertion.
                if k < s.count, s[k] != UInt8(ascii: "]"), arrayOfTables || s[k] != UInt8(ascii: "["),
                    !isKeyStart(s[k])
                {
                    return (line, "a table header needs a name")
                }
                i = k  // the header's name is read as the rest of a statement: its brackets close nothing
                statementStart = false
                previous = UInt8(ascii: "[")
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                i += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
                i += 1
            case 0x80...:
                return (line, "a character outside a string or comment is not ASCII")
            default:
                i += 1
            }
            statementStart = false
            previous = c
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
