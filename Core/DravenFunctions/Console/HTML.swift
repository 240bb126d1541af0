/// A piece of HTML. Built with string interpolation, every interpolated `String` or number is
/// escaped (`&`, `<`, `>`, `"`, `'`), so a ref or a reason containing markup shows as text;
/// only another `HTML` value is inserted as it is. Attribute values are always quoted in the
/// templates, so the same escaping is right inside them.
struct HTML: ExpressibleByStringInterpolation, Sendable {
    private(set) var text: String

    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: StringInterpolation) { text = stringInterpolation.text }
    /// Markup that is already HTML (a constant of the console's own).
    init(trusted: String) { text = trusted }

    static let empty = HTML(trusted: "")

    struct StringInterpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ html: HTML) { text += html.text }
        mutating func appendInterpolation(_ list: [HTML]) { for html in list { text += html.text } }
    }

    /// `value` with the five characters that mean something in HTML replaced by references.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for c in value.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Joins pieces with `separator` (itself HTML).
    static func join(_ pieces: [HTML], _ separator: HTML = .empty) -> HTML {
        var text = ""
        for (k, piece) in pieces.enumerated() {
            if k > 0 { text += separator.text }
            text += piece.text
        }
        return HTML(trusted: text)
    }
}
