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
        let special: (UInt8) -> Bool = { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }
        guard value.utf8.contains(where: special) else { return value }  // most values: nothing to do
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 16)
        for byte in value.utf8 {
            switch byte {
            case 38: out += Array("&amp;".utf8)
            case 60: out += Array("&lt;".utf8)
            case 62: out += Array("&gt;".utf8)
            case 34: out += Array("&quot;".utf8)
            case 39: out += Array("&#39;".utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
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
