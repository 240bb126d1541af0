/// A JSON object body whose fields are known: unknown fields are refused (a typo is an error,
/// not a silently ignored option), and string fields are read with their limits.
package struct BodyFields {
    let object: JSONObject

    /// - Parameter what: the request's name for errors (`a deploy request`).
    /// - Throws: `.malformed` unless an object; `.invalidField` for a field not in `fields`.
    package init(_ body: JSON, fields: [String], of what: String) throws {
        guard let object = body.objectValue else { throw DravenError.malformed("the body must be a JSON object") }
        for key in object.keys where !fields.contains(key) {
            throw DravenError.invalidField(
                pointer: "/" + key, reason: "is not a field of \(what) (\(fields.joined(separator: ", ")))")
        }
        self.object = object
    }

    /// A string field (`numbers`: an integer is also taken, as its decimal text).
    /// - Throws: `.invalidField` when missing while required, not a string, empty while required, or too long.
    package func string(_ name: String, required: Bool, max: Int, numbers: Bool = false) throws -> String? {
        guard let value = object[name], !value.isNull else {
            if required { throw DravenError.invalidField(pointer: "/" + name, reason: "is required") }
            return nil
        }
        guard let s = value.stringValue ?? (numbers ? value.intValue.map({ String($0) }) : nil) else {
            throw DravenError.invalidField(pointer: "/" + name, reason: "must be a string")
        }
        guard !s.isEmpty || !required else {
            throw DravenError.invalidField(pointer: "/" + name, reason: "must not be empty")
        }
        guard s.utf8.count <= max else {
            throw DravenError.invalidField(pointer: "/" + name, reason: "is longer than \(max) bytes")
        }
        return s
    }
}

extension BodyFields {
    /// An object field, empty when absent.
    /// - Throws: `.invalidField` when present and not an object.
    package func object(_ name: String) throws -> JSONObject {
        guard let value = object[name], !value.isNull else { return [:] }
        guard let o = value.objectValue else {
            throw DravenError.invalidField(pointer: "/" + name, reason: "must be an object")
        }
        return o
    }
}

extension Request {
    /// The JSON body, or an empty object when there is none (routes whose fields are all optional).
    package func optionalJSONBody() throws -> JSON {
        body.isEmpty ? .object([:]) : try jsonBody()
    }
}
