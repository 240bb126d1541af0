import DravenTOML

@testable import DravenCore

/// `config` and `toml`: `draven apply`'s reading of a configuration — the document (JSON, or TOML
/// read by `TOMLDocument.parse`, CLI/DravenTOML) and Core's validation. Property: a refusal is a
/// `ConfigError` naming each problem's key.
enum FuzzConfig {
    static func runJSON(_ input: [UInt8]) {
        guard let tree = try? JSON.parse(input) else { return }
        validate(tree)
    }

    static func runTOML(_ input: [UInt8]) {
        // ConfigFile.load refuses a file that is not UTF-8 before TOML sees it.
        guard let source = String(validating: input, as: UTF8.self) else { return }
        let tree: JSON
        do {
            tree = try TOMLDocument.parse(source, file: "fuzz.toml")
        } catch {
            check(!error.problems.isEmpty, "a refused TOML document names no problem")
            for problem in error.problems where !problem.reason.hasPrefix("is not valid TOML") {
                check(
                    !problem.key.isEmpty && !problem.reason.isEmpty,
                    "a value without a JSON form is not named: \(problem)")
            }
            return
        }
        validate(tree)
    }

    static func validate(_ tree: JSON) {
        do {
            let config = try Config.validate(tree, file: "fuzz.toml")
            for project in config.projects { _ = project.environments.map { $0.document.serializedBytes() } }
        } catch {
            check(!error.problems.isEmpty, "a refused configuration names no problem")
        }
    }
}
