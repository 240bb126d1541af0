import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the state directory, the database (migrated) and the token-hash key. Safe to run again.")
        @OptionGroup var state: StateOptions

        func run() throws {
            let paths = state.paths
            let fm = FileManager.default
            for dir in [paths.stateDir, paths.secretsDir] {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            }
            let db = try Database(path: paths.database)
            let applied = try Migrations.migrate(db)
            let created = try DravenCore.Tokens.ensureKey(paths)
            print("state directory: \(paths.stateDir)")
            print("database: \(paths.database) (\(applied.isEmpty ? "up to date" : "applied " + applied.joined(separator: ", ")))")
            print("token key: \(paths.tokenKey) (\(created ? "created" : "kept"))")
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply database migrations this version knows and the store lacks.")
        @OptionGroup var state: StateOptions

        func run() throws {
            guard FileManager.default.fileExists(atPath: state.paths.database) else {
                throw ValidationError("no store at \(state.paths.database); run `draven init` first")
            }
            let applied = try Migrations.migrate(Database(path: state.paths.database, create: false))
            print(applied.isEmpty ? "up to date" : "applied: " + applied.joined(separator: ", "))
        }
    }
}
