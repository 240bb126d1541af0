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
            let plans = try ConfigPlans.load(config.plans, configFile: file)
            if dryRun {
                print(
                    "\(file): valid (\(config.projects.count) projects, \(config.people.count) people, "
                        + "\(config.grants.count) grants, \(plans.count) plans)")
                return
            }
            let db = try state.open()
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            let now = Clock.now()
            let (summary, applied) = try db.immediate { tx in
                let summary = try ConfigApply.apply(
                    tx, config, source: source, path: path, appliedBy: state.operatorName, now: now)
                // Plans are checked against the configuration just written: one transaction for both.
                return (summary, try ConfigPlans.apply(tx, plans, configFile: file, by: state.operatorName, now: now))
            }
            print(
                "applied \(file) as config version \(summary.version): \(summary.projects) projects, "
                    + "\(summary.environments) environments, \(summary.people) people, \(summary.grants) grants")
            if !summary.policiesChanged.isEmpty {
                print("policies changed: " + summary.policiesChanged.joined(separator: ", "))
            }
            for line in applied { print(line) }
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

/// The `[[plans]]` of a configuration: each file read (relative to the configuration file) and
/// parsed before anything is written; each plan checked against the store and applied in the
/// configuration's transaction. A problem prints as `FILE: plans[N] (PLAN FILE)/POINTER: WHY`
/// and applies nothing (exit 2). Plans no longer listed stay as they are (versions are never removed).
enum ConfigPlans {
    struct Loaded {
        var entry: Config.PlanEntry
        var document: JSON
        var label: String
    }

    static func load(_ entries: [Config.PlanEntry], configFile: String) throws -> [Loaded] {
        let base = URL(fileURLWithPath: configFile).deletingLastPathComponent()
        return try entries.map { entry in
            guard let file = entry.file else {
                return Loaded(entry: entry, document: entry.document ?? .null, label: entry.key)
            }
            let label = "\(entry.key) (\(file))"
            let url = file.hasPrefix("/") ? URL(fileURLWithPath: file) : base.appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw fail(configFile, label, "cannot be read")
            }
            let document: JSON
            do { document = try JSON.parse(Array(data)) } catch let error as JSONParseError {
                throw fail(configFile, label, "is not valid JSON: \(error.reason) at byte \(error.offset)")
            }
            do { _ = try Plan.parse(document) } catch { throw fail(configFile, label, error) }
            return Loaded(entry: entry, document: document, label: label)
        }
    }

    /// Returns one line per plan: applied as version N, or unchanged.
    static func apply(_ tx: Transaction, _ plans: [Loaded], configFile: String, by actor: String, now: Int64) throws
        -> [String]
    {
        try plans.map { loaded in
            do {
                let plan = try Plan.parse(loaded.document, store: tx.db)
                let applied = try Plans.apply(tx, plan, by: actor, now: now)
                let v = applied.stored.version
                return "plan \(plan.id): " + (applied.created ? "applied as version \(v)" : "unchanged (version \(v))")
            } catch {
                throw fail(configFile, loaded.label, error)
            }
        }
    }

    static func fail(_ configFile: String, _ label: String, _ error: any Error) -> ExitCode {
        switch error {
        case DravenError.invalidField(let pointer, let reason): return fail(configFile, label + pointer, reason)
        case DravenError.conflict(let why): return fail(configFile, label, why)
        default: return fail(configFile, label, "\(error)")
        }
    }

    static func fail(_ configFile: String, _ label: String, _ reason: String) -> ExitCode {
        warn("\(configFile): \(label): \(reason)")
        return ExitCode(2)
    }
}
