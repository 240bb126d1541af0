import ArgumentParser
import DravenCore
import DravenTOML
import Foundation

extension Draven {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file (TOML or JSON) and apply it as a new version.",
            discussion: "Nothing is applied when the file has any problem; each is printed as FILE: KEY: WHY.")
        @OptionGroup var state: StateOptions
        @Option(name: .shortAndLong, help: "The configuration file (draven.toml).") var file: String
        @Flag(help: "Validate only; change nothing.") var dryRun = false

        func run() throws {
            let config: Config
            let source: String
            do {
                (config, source) = try ConfigFile.load(file)
            } catch let error as ConfigError {
                warn(error.description)
                throw ExitCode(2)
            }
            for warning in ConfigApply.warnings(config) { warn("\(file): warning: \(warning)") }
            if dryRun {
                print(
                    "\(file): valid (\(config.projects.count) projects, \(config.people.count) people, "
                        + "\(config.grants.count) grants)")
                return
            }
            let db = try state.open()
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            let summary = try db.immediate { tx in
                try ConfigApply.apply(
                    tx, config, source: source, path: path, appliedBy: state.operatorName,
                    now: Clock.now())
            }
            print(
                "applied \(file) as config version \(summary.version): \(summary.projects) projects, "
                    + "\(summary.environments) environments, \(summary.people) people, \(summary.grants) grants")
            if !summary.policiesChanged.isEmpty {
                print("policies changed: " + summary.policiesChanged.joined(separator: ", "))
            }
        }
    }
}

/// Reads a configuration file into a validated `Config`.
enum ConfigFile {
    static func load(_ file: String) throws -> (Config, String) {
        guard let data = FileManager.default.contents(atPath: file),
            let source = String(data: data, encoding: .utf8)
        else {
            throw ConfigError(file: file, problems: [.init(key: "", reason: "cannot be read as UTF-8 text")])
        }
        let tree: JSON
        if file.hasSuffix(".json") {
            do { tree = try JSON.parse(source) } catch {
                let why = "is not valid JSON: \(error.reason) at byte \(error.offset)"
                throw ConfigError(file: file, problems: [.init(key: "", reason: why)])
            }
        } else {
            tree = try TOMLDocument.parse(source, file: file)
        }
        return (try Config.validate(tree, file: file), source)
    }
}
