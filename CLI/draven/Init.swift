import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the state directory, the database (migrated), the token-hash key and the audit "
                + "checkpoint key. Safe to run again.")
        @OptionGroup var state: StateOptions

        func run() throws {
            let paths = state.paths
            let fm = FileManager.default
            for dir in [paths.stateDir, paths.secretsDir] {
                try fm.createDirectory(
                    atPath: dir, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o750])
            }
            let db = try Database(path: paths.database)
            let applied = try Migrations.migrate(db)
            let created = try DravenCore.Tokens.ensureKey(paths)
            let checkpoints = CheckpointPaths(paths)
            let keyCreated = try AuditCheckpoints.ensureKey(checkpoints)
            print("state directory: \(paths.stateDir)")
            let migrations = applied.isEmpty ? "up to date" : "applied " + applied.joined(separator: ", ")
            print("database: \(paths.database) (\(migrations))")
            print("token key: \(paths.tokenKey) (\(created ? "created" : "kept"))")
            print("audit checkpoint key: \(checkpoints.signingKey) (\(keyCreated ? "created" : "kept"))")
            if !fm.fileExists(atPath: checkpoints.log) {  // the first checkpoint anchors the chain as it is now
                if case .refused(let findings) = try AuditCheckpoints.write(db, checkpoints) {
                    for finding in findings { warn("audit: \(finding)") }
                    throw ValidationError("the audit trail does not verify; no checkpoint written")
                }
                print("audit checkpoints: \(checkpoints.log) (first checkpoint written)")
            }
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply database migrations this version knows and the store lacks.")
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
