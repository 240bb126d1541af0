@testable import DravenCore

/// `plan`: a plan document as `POST /api/v1/plans` and `draven apply` read it (`Plan.parse`), and
/// the same bytes as a condition and as a template. Properties: a refusal of a document is
/// `invalidField` with a pointer or `malformed`; an accepted plan's canonical document reads back
/// as the same plan and is a fixed point; a condition's canonical text parses to the same
/// condition; a template's text is kept as written.
enum FuzzPlan {
    static func run(_ input: [UInt8]) {
        if let tree = try? JSON.parse(input) { document(tree) }
        guard let text = String(validating: input, as: UTF8.self) else { return }
        if let e = try? PlanExpression.parse(text) {
            check((try? PlanExpression.parse(e.source)) == e, "a condition's canonical text differs: \(e.source)")
            _ = e.evaluate(PlanScope(inputs: ["ref": "v1"], steps: ["a": .init(result: "succeeded", attempts: 1)]))
        }
        if let t = try? PlanTemplate.parse(text) {
            check(t.source == text, "a template does not keep its text")
            _ = t.render(PlanScope(inputs: ["ref": "v1"]))
        }
    }

    static func document(_ tree: JSON) {
        let plan: Plan
        do {
            plan = try Plan.parse(tree)
        } catch DravenError.invalidField(let pointer, let reason) {
            check(pointer.hasPrefix("/") && !reason.isEmpty, "a refusal names no key: \(pointer) \(reason)")
            return
        } catch DravenError.malformed {
            return
        } catch {
            check(false, "Plan.parse threw \(error)")
            return
        }
        let canonical = plan.json
        check((try? Plan.parse(canonical)) == plan, "the canonical document is another plan")
        check((try? Plan.parse(canonical))?.json == canonical, "the canonical document is not a fixed point")
    }
}
