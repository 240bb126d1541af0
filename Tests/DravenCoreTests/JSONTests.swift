import Testing

@testable import DravenCore

@Suite struct JSONTests {
    @Test func parsesAndRefusesWhatRFC8259Says() throws {
        let doc = try JSON.parse(#"{"a": [1, -2.5e1, true, null, "\u00e9\n"], "b": {}}"#)
        let a = doc["a"]?.arrayValue ?? []
        #expect(a == [.int(1), .double(-25), .bool(true), .null, .string("é\n")])
        #expect(doc["b"]?.objectValue == [:])
        #expect(
            try JSON.parse(#"["a\"b\\c\u0041d", "\tx", "y\n", "plain é"]"#)
                == .array(["a\"b\\cAd", "\tx", "y\n", "plain é"]))
        for bad in [
            #"{"a":1,"a":2}"#, #"{"a":1,"b":2,"\u0061":3}"#, "[01]", #"{"a" 1}"#, "[1,]", "\"\u{01}\"", "[1] x",
            String(repeating: "[", count: 65) + String(repeating: "]", count: 65),
        ] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSON.parse(bad) }
        }
    }

    /// Strict by default (draven's own contracts); `.lastWins` reads a repeated key as
    /// JavaScript's `JSON.parse` does: the last value, in the first one's place.
    @Test func duplicateKeysAreRefusedUnlessAskedToLetTheLastWin() throws {
        let text = #"{"repository": {"git_ssh_url": "a", "name": "n", "git_ssh_url": "b"}, "x": 1, "\u0078": 2}"#
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
        #expect(throws: JSONParseError.self) { try JSON.parse(text, duplicateKeys: .refuse) }
        let doc = try JSON.parse(text, duplicateKeys: .lastWins)
        #expect(doc["repository"]?.objectValue?.keys == ["git_ssh_url", "name"])
        #expect(doc["repository"]?["git_ssh_url"] == "b")
        #expect(doc["x"] == 2 && doc.objectValue?.count == 2)
        // Everything else stays strict.
        for bad in [#"{"a":1,"a":}"#, #"{"a":1,"a":2"#, "[01]"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSON.parse(bad, duplicateKeys: .lastWins) }
        }
    }

    /// Keys are the same key when their bytes are (found by the fuzz target `json`: Swift's `==`
    /// calls U+212A KELVIN SIGN and `K` equal, so `{"\u212a":2,"K":3}` read 2 for `K`, and a
    /// repeated `K` replaced the Kelvin sign's value). Tests/Fuzz/regressions/json/kelvin-*.
    @Test func keysAreComparedByTheirBytes() throws {
        let doc = try JSON.parse(#"{"\u212a": 2, "K": 3}"#)
        #expect(doc["K"] == 3 && doc["\u{212A}"] == 2 && doc.objectValue?.count == 2)
        let lenient = try JSON.parse(#"{"\u212a": 2, "K": 3, "\u004b": 9}"#, duplicateKeys: .lastWins)
        #expect(lenient["K"] == 9 && lenient["\u{212A}"] == 2 && lenient.objectValue?.keys == ["\u{212A}", "K"])
        #expect(try JSON.parse(#"{"\u212a": 1}"#) != JSON.parse(#"{"K": 1}"#))
    }

    @Test func stringAtPathFindsTheMemberWithoutBuildingTheDocument() {
        let json =
            #"{"ref": "x", "commits": [{"id": "1", "n": [1.5e3, {"k": "\"v\""}]}], "#
            + #""repository": {"id": 1, "full_name": "o/r", "owner": {"login": "o"}}, "after": "ab"}"#
        let text = Array(json.utf8)
        #expect(JSON.string(at: ["repository", "full_name"], in: text) == "o/r")
        #expect(JSON.string(at: ["repository", "owner", "login"], in: text) == "o")
        #expect(JSON.string(at: ["after"], in: text) == "ab")
        #expect(JSON.string(at: ["repository", "id"], in: text) == nil)  // not a string
        #expect(JSON.string(at: ["ref", "x"], in: text) == nil)  // through a non-object
        #expect(JSON.string(at: ["project", "path_with_namespace"], in: text) == nil)  // absent
        #expect(JSON.string(at: ["a"], in: Array("{}".utf8)) == nil)
        #expect(JSON.string(at: [#"k"y"#], in: Array(#"{"k\"y": "escaped key"}"#.utf8)) == "escaped key")
    }

    @Test func stringAtPathRefusesMalformedJSONBeforeTheMember() {
        for bad in [
            #"{"a": [1,, 2], "r": "x"}"#, #"{"a": tru, "r": "x"}"#, #"{"a": "\q", "r": "x"}"#, #"{"a" "r": "x"}"#,
            #"{"a": 01, "r": "x"}"#,
        ] {
            #expect(JSON.string(at: ["r"], in: Array(bad.utf8)) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
        #expect(JSON.string(at: ["r"], in: Array(#"{"a": \#(deep), "r": "x"}"#.utf8)) == nil)
    }

    /// On every real payload in events/, the scan agrees with the full parse.
    @Test func stringAtPathAgreesWithTheParserOnRealPayloads() throws {
        let paths = [
            ["repository", "full_name"], ["project", "path_with_namespace"], ["repository", "slug"],
            ["workflow_run", "head_sha"], ["object_kind"],
        ]
        var checked = 0
        for file in Fixtures.payloads() {
            let bytes = Fixtures.bytes(file)
            let doc = try JSON.parse(bytes)
            for path in paths {
                var expected: JSON? = doc
                for key in path { expected = expected?[key] }
                #expect(JSON.string(at: path, in: bytes) == expected?.stringValue, "\(file) \(path)")
            }
            checked += 1
        }
        #expect(checked >= 10)
    }
}
