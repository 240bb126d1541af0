import Testing

@testable import DravenCore

/// Conditions and templates: what parses, what it means, what it reads, and what is refused.
@Suite struct PlanExpressionTests {
    static let scope = PlanScope(
        inputs: ["ref": "v1.2.0", "region": "eu", "empty": ""],
        steps: [
            "stage": .init(result: "succeeded", attempts: 2, outputs: ["url": "https://stage.example"]),
            "health": .init(result: "failed", attempts: 1),
        ])

    static let holds: [(String, Bool)] = [
        ("steps.stage.result == 'succeeded'", true),
        ("steps.health.result == 'succeeded'", false),
        ("steps.health.result != 'succeeded'", true),
        ("steps.stage.attempts >= 2 and steps.stage.attempts < 3", true),
        ("steps.stage.attempts > 2", false),
        ("not steps.health.result == 'succeeded'", true),
        ("not (steps.stage.result == 'succeeded' or steps.health.result == 'succeeded')", false),
        ("steps.stage.result == 'succeeded' or steps.health.result == 'succeeded' and false", true),
        ("(steps.stage.result == 'succeeded' or steps.health.result == 'succeeded') and false", false),
        ("inputs.region == 'eu'", true),
        ("inputs.ref > 'v1.10.0'", true),  // strings order by bytes
        ("inputs.empty", false),
        ("inputs.region", true),
        ("inputs.missing == null", true),
        ("steps.never.result == null", true),
        ("steps.never.attempts == null", true),
        ("steps.stage.outputs.url == 'https://stage.example'", true),
        ("steps.stage.outputs.nope", false),
        ("steps.stage.attempts == '2'", false),  // type and value
        ("steps.stage.attempts < 'z'", false),  // no order between an integer and a string
        ("-1 < 0", true),
        ("true and not false", true),
        ("null", false),
        ("'it\\'s' == 'it\\'s'", true),
    ]

    @Test(arguments: holds)
    func evaluates(_ text: String, _ expected: Bool) throws {
        let e = try PlanExpression.parse(text)
        #expect(e.holds(Self.scope) == expected, "\(e)")
        // The canonical text means the same and is a fixed point.
        #expect(try PlanExpression.parse(e.source) == e, "\(e.source)")
        #expect(try PlanExpression.parse(e.source).source == e.source)
    }

    @Test func namesWhatItReads() throws {
        let e = try PlanExpression.parse(
            "steps.b.result == 'x' and (inputs.ref == steps.a.outputs.k or steps.b.attempts > 1) and inputs.z")
        #expect(e.stepsNamed == ["b", "a"])
        #expect(e.inputsNamed == ["ref", "z"])
        #expect(e.evaluate(PlanScope()) == .bool(false))
    }

    static let refused: [(String, String)] = [
        ("", "ends early"),
        ("steps.a.result ==", "ends early"),
        ("steps.a.result = 'x'", "expected '==' or '!='"),
        ("steps.a.result == 'x", "not closed"),
        ("a == b == c", "a path starts with inputs. or steps."),
        ("steps.a.result == 'x' == 'y'", "unexpected '=='"),
        ("(steps.a.result == 'x'", "expected ')'"),
        ("steps.a.result == 'x')", "unexpected ')'"),
        ("steps.a", "steps.ID.result"),
        ("steps.a.outputs", "steps.ID.result"),
        ("inputs.a.b", "inputs.NAME"),
        ("steps..result", "empty part"),
        ("system('rm -rf /')", "a path starts with inputs. or steps."),
        ("inputs.a & inputs.b", "unexpected character"),
        ("1x == 1", "followed by a letter"),
        ("'a\\n'", "only \\' and \\\\"),
        ("steps.a.result == 'x' and", "ends early"),
        ("not", "ends early"),
        ("99999999999999999999 == 1", "expected an integer"),
        (String(repeating: "(", count: 40) + "true" + String(repeating: ")", count: 40), "nests deeper than 32"),
        (String(repeating: "not ", count: 40) + "true", "nests deeper than 32"),
        (String(repeating: "x", count: 1025), "longer than 1024"),
    ]

    @Test(arguments: refused)
    func refuses(_ text: String, _ reason: String) {
        let error = #expect(throws: PlanSyntaxError.self) { try PlanExpression.parse(text) }
        #expect(error?.reason.contains(reason) == true, "\(text): \(String(describing: error))")
    }

    @Test func templates() throws {
        let t = try PlanTemplate.parse("deploy ${inputs.ref} after ${steps.stage.outputs.url} for $$5 ($${x})")
        #expect(
            t.parts == [
                .text("deploy "), .path(["inputs", "ref"]), .text(" after "),
                .path(["steps", "stage", "outputs", "url"]),
                .text(" for $5 (${x})"),
            ])
        #expect(t.render(Self.scope) == "deploy v1.2.0 after https://stage.example for $5 (${x})")
        #expect(t.inputsNamed == ["ref"] && t.stepsNamed == ["stage"])
        #expect(try PlanTemplate.parse("${steps.stage.attempts}/${inputs.none}").render(Self.scope) == "2/")
        #expect(try PlanTemplate.parse("plain").parts == [.text("plain")])
        #expect(try PlanTemplate.parse("").parts == [])
        for (bad, reason) in [
            ("$", "write $$"), ("a $b", "write $$"), ("${inputs.ref", "not closed"), ("${}", "dotted path"),
            ("${inputs.ref }", "dotted path"), ("${inputs..x}", "dotted path"), ("${HOME}", "starts with inputs."),
            ("${steps.a}", "steps.ID.result"), (String(repeating: "a", count: 4097), "longer than 4096"),
        ] {
            let error = #expect(throws: PlanSyntaxError.self) { try PlanTemplate.parse(bad) }
            #expect(error?.reason.contains(reason) == true, "\(bad): \(String(describing: error))")
        }
    }
}
