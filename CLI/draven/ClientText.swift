import DravenCore
import Foundation

/// How the client commands (`deploy`, `jobs`, `status`) show what the API answered to a person.
/// Everything shown comes from the API, and much of it from other people (a reason, a ref, a
/// runner's progress message): control characters are shown escaped (`\x1b`), so no field can
/// move the cursor, retitle the terminal or hide a line.
enum Text {
    /// `text` with C0 controls, DEL and C1 controls escaped as `\xNN`.
    static func safe(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || v == 0x7f || (0x80...0x9f).contains(v) {
                out += "\\x" + String(v, radix: 16).leftPadded(to: 2, with: "0")
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A field of a job as text ("" when absent or null).
    static func field(_ job: JSON, _ key: String) -> String {
        guard let value = job[key], !value.isNull else { return "" }
        return safe(value.stringValue ?? value.serialized())
    }

    /// The runner's last progress report: `STEP PERCENT% MESSAGE` ("" when none).
    static func progress(_ job: JSON) -> String {
        guard let p = job["progress"], p.objectValue != nil else { return "" }
        var parts: [String] = []
        if let step = p["step"]?.stringValue { parts.append(safe(step)) }
        if let percent = p["percent"]?.doubleValue { parts.append("\(Int(percent))%") }
        if let message = p["message"]?.stringValue, !message.isEmpty { parts.append(safe(message)) }
        return parts.joined(separator: " ")
    }

    /// `project/environment`.
    static func target(_ job: JSON) -> String { field(job, "project") + "/" + field(job, "environment") }

    /// An RFC 3339 time from the API as seconds since 1970.
    static func seconds(_ rfc3339: String?) -> Int64? {
        guard let rfc3339 else { return nil }
        return ISO8601DateFormatter().date(from: rfc3339).map { Int64($0.timeIntervalSince1970) }
    }

    /// `12s`, `5m`, `3h`, `2d`.
    static func span(_ seconds: Int64) -> String {
        let s = max(0, seconds)
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }

    /// `2026-05-01T10:00:00Z (5m ago)`.
    static func when(_ rfc3339: String?, now: Int64 = Int64(Date().timeIntervalSince1970)) -> String {
        guard let rfc3339 else { return "" }
        guard let at = seconds(rfc3339) else { return safe(rfc3339) }
        return "\(safe(rfc3339)) (\(span(now - at)) ago)"
    }

    /// Rows as columns padded to their widest cell (the last column is not padded).
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// An event's detail as `key=value` pairs (strings bare, other values as JSON).
    static func detail(_ detail: JSON?) -> String {
        guard case .object(let object)? = detail else { return "" }
        return object.entries.map { key, value in
            "\(safe(key))=\(safe(value.stringValue ?? value.serialized()))"
        }.joined(separator: " ")
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character) -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

/// Writes to stdout exactly these bytes (a log is passed through as it was stored).
func writeOut(_ bytes: [UInt8]) {
    guard !bytes.isEmpty else { return }
    FileHandle.standardOutput.write(Data(bytes))
}
