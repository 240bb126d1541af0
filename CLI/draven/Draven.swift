import ArgumentParser
import DravenCore
import Foundation

/// `draven` — the operator's command: set up the store, apply configuration, manage tokens,
/// verify the audit trail.
@main
struct Draven: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draven",
        abstract: "Operate a draven deploy control plane.",
        subcommands: [
            Init.self, Migrate.self, Apply.self, Tokens.self, SecretsCommand.self, Sweep.self,
            AuditCommand.self, DoctorCommand.self, DeployCommand.self, JobsCommand.self, StatusCommand.self,
            LogsCommand.self, ApproveCommand.self, RejectCommand.self, RollbackCommand.self, CancelCommand.self,
            ConsoleCommand.self, SessionsCommand.self, PlanCommand.self, EventsCommand.self,
        ]
    )
}

/// Where the state lives; shared by every subcommand.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "State directory (default: $DRAVEN_STATE_DIR or /var/lib/draven).")
    var stateDir: String?

    @Option(
        name: .customLong("secrets-dir"),
        help: "Secrets directory (default: $DRAVEN_SECRETS_DIR or <state-dir>/secrets).")
    var secretsDir: String?

    var paths: Paths {
        let env = ProcessInfo.processInfo.environment
        return Paths(
            stateDir: stateDir ?? env["DRAVEN_STATE_DIR"] ?? "/var/lib/draven",
            secretsDir: secretsDir ?? env["DRAVEN_SECRETS_DIR"])
    }

    /// Opens the store, failing with a clear message when it has not been initialised.
    func open() throws -> Database {
        let path = paths.database
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("no store at \(path); run `draven init --state-dir \(paths.stateDir)` first")
        }
        let db = try Database(path: path, create: false)
        let pending = try Migrations.pending(db)
        guard pending.isEmpty else {
            let names = pending.joined(separator: ", ")
            throw ValidationError("the store needs migrating (\(names)); run `draven migrate`")
        }
        return db
    }

    /// The operator's name for the audit trail.
    var operatorName: String {
        let env = ProcessInfo.processInfo.environment
        return "cli:" + (env["SUDO_USER"] ?? env["USER"] ?? "unknown")
    }
}

/// Prints to stderr.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
