import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven secrets …`: the signed, encrypted secrets store. Values are read from stdin or a
    /// file, never from argv, and never printed.
    struct SecretsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "secrets",
            abstract: "Manage the signed, encrypted secrets store.",
            discussion: "Exit codes: 2 usage, 3 not found, 4 tampered, 5 rollback, 6 wrong master key, 7 permissions.",
            subcommands: [
                InitStore.self, Set.self, List.self, Remove.self, Rotate.self, Verify.self, PublicKey.self, Seal.self,
                Import.self,
            ])

        /// Runs `body`, turning a `SecretsError` into its message and exit code.
        static func run(_ body: () throws -> Void) throws {
            do {
                try body()
            } catch let error as SecretsError {
                warn("draven secrets: \(error)")
                throw ExitCode(error.exitCode)
            }
        }

        struct InitStore: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "init", abstract: "Create the store, its signing key and (if absent) the master key file.")
            @OptionGroup var state: StateOptions
            func run() throws {
                try SecretsCommand.run {
                    let paths = SecretsPaths(state.paths)
                    let id = try SecretsAdmin.initialize(
                        paths, db: try state.open(), actor: state.operatorName, now: Clock.now())
                    print("secrets store \(id) created at \(paths.store)")
                    print("master key: \(paths.kek)   signing key: \(paths.signingKey) (keep it from the functions)")
                }
            }
        }

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set a secret from stdin or --from-file (a new version if it exists).")
            @OptionGroup var state: StateOptions
            @Argument(help: "The secret's name, e.g. github-shop-token.") var name: String
            @Option(help: "token, hmac, ssh-key, pem, password or opaque.") var kind: String = "token"
            @Option(name: .customLong("from-file"), help: "Read the value from this file instead of stdin.")
            var fromFile: String?
            @Flag(help: "Keep a trailing newline (by default one is removed).") var keepNewline = false

            func run() throws {
                guard let kind = SecretKind(name: kind) else {
                    throw ValidationError(
                        "--kind must be one of \(SecretKind.allCases.map(\.name).joined(separator: ", "))")
                }
                let value = try readValue(fromFile: fromFile, keepNewline: keepNewline, label: name)
                try SecretsCommand.run {
                    try state.updateSecrets { draft in (try draft.set(name, kind: kind, value: value), [name]) }
                    print("set \(name)")
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List names, kinds, versions and dates (never values).")
            @OptionGroup var state: StateOptions
            @Flag(help: "Print JSON.") var json = false
            func run() throws {
                try SecretsCommand.run {
                    let store = try SecretsStore(SecretsPaths(state.paths), db: try state.open())
                    if json {
                        let items = store.entries.map { e -> JSON in
                            .object([
                                "name": .string(e.name), "kind": .string(e.kind.name),
                                "version": .int(Int64(e.version)),
                                "updated": .string(Clock.rfc3339(e.updated)),
                            ])
                        }
                        print(
                            JSON.object([
                                "store": .string(store.storeID), "generation": .int(Int64(store.generation)),
                                "entries": .array(items),
                            ]).serialized())
                    } else {
                        print("store \(store.storeID), generation \(store.generation)")
                        print(["NAME", "KIND", "VERSION", "UPDATED"].joined(separator: "\t"))
                        for e in store.entries {
                            print(
                                [e.name, e.kind.name, String(e.version), Clock.rfc3339(e.updated)].joined(
                                    separator: "\t"))
                        }
                    }
                }
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a secret.")
            @OptionGroup var state: StateOptions
            @Argument var name: String
            func run() throws {
                try SecretsCommand.run {
                    try state.updateSecrets { draft in (try draft.remove(name), [name]) }
                    print("removed \(name)")
                }
            }
        }

        struct Rotate: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Replace the data key and re-seal every entry.")
            @OptionGroup var state: StateOptions
            func run() throws {
                try SecretsCommand.run {
                    try state.updateSecrets { draft in (draft.rotateDataKey(), ["(data key)"]) }
                    print("data key rotated; all entries re-sealed")
                }
            }
        }

        struct Verify: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check signature, generation, permissions and that every entry decrypts.",
                discussion: "--accept-rollback GEN accepts the store file at generation GEN (a restored backup): it "
                    + "re-signs the generation floor and resets the database's record to it (needs the signing key; "
                    + "audited).")
            @OptionGroup var state: StateOptions
            @Option(name: .customLong("accept-rollback"), help: "Accept the store file at this (older) generation.")
            var acceptRollback: UInt64?
            func run() throws {
                try SecretsCommand.run {
                    if let acceptRollback {
                        try SecretsAdmin.acceptRollback(
                            SecretsPaths(state.paths), generation: acceptRollback,
                            db: try state.open(), actor: state.operatorName,
                            now: Clock.now())
                        print("accepted generation \(acceptRollback) of the secrets store")
                    }
                    let store = try SecretsStore(SecretsPaths(state.paths), db: try state.open())
                    try store.verifyAll()
                    print(
                        "secrets store \(store.storeID) verified: generation \(store.generation),"
                            + " \(store.entries.count) entries"
                    )
                }
            }
        }

        struct PublicKey: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "pubkey", abstract: "Print the intake public key that `seal` needs.")
            @OptionGroup var state: StateOptions
            func run() throws {
                try SecretsCommand.run {
                    print(try SecretsIntake.publicKeyText(SecretsPaths(state.paths), db: try state.open()))
                }
            }
        }

        struct Seal: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Seal a value (stdin) for the store with only its public key; needs no draven state (CI).",
                discussion: "Prints a drvseal1:… blob for `draven secrets import`. Valid for 7 days, importable once."
            )
            @Argument var name: String
            @Option(name: .customLong("public-key"), help: "The drvpk1:… key from `draven secrets pubkey`.")
            var publicKey: String
            @Flag(help: "Keep a trailing newline.") var keepNewline = false
            func run() throws {
                let value = try readValue(fromFile: nil, keepNewline: keepNewline, label: name)
                try SecretsCommand.run {
                    print(try SecretsIntake.seal(name: name, value: value, publicKey: publicKey, now: Clock.now()))
                }
            }
        }

        struct Import: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Import drvseal1 blobs (one per line) from files or stdin (-).")
            @OptionGroup var state: StateOptions
            @Argument var files: [String] = ["-"]
            func run() throws {
                var blobs: [String] = []
                for f in files {
                    let data =
                        f == "-"
                        ? FileHandle.standardInput.readDataToEndOfFile()
                        : (FileManager.default.contents(atPath: f) ?? Data())
                    blobs += String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
                        .filter { !$0.isEmpty }
                }
                try SecretsCommand.run {
                    let names = try SecretsIntake.importBlobs(
                        blobs, paths: SecretsPaths(state.paths), db: try state.open(),
                        actor: state.operatorName, now: Clock.now())
                    print("imported \(names.joined(separator: ", "))")
                }
            }
        }
    }
}

extension StateOptions {
    /// Opens the secrets store for one signed update by this operator.
    func updateSecrets(_ change: (inout SecretsAdmin.Draft) throws -> ((), changed: [String])) throws {
        try SecretsAdmin.update(SecretsPaths(paths), db: try open(), actor: operatorName, now: Clock.now(), change)
    }
}

/// Reads a secret value from a file or stdin into a `SecretBytes`, wiping the buffer.
func readValue(fromFile: String?, keepNewline: Bool, label: String) throws -> SecretBytes {
    let handle: FileHandle
    if let fromFile {
        guard let h = FileHandle(forReadingAtPath: fromFile) else { throw ValidationError("cannot read \(fromFile)") }
        handle = h
    } else {
        if isatty(0) != 0 { warn("reading the value of \(label) from stdin (end with Ctrl-D)") }
        handle = FileHandle.standardInput
    }
    var bytes = [UInt8](handle.readDataToEndOfFile())
    defer { Sodium.wipe(&bytes) }
    if !keepNewline, bytes.last == 10 {
        bytes.removeLast()
        if bytes.last == 13 { bytes.removeLast() }
    }
    guard !bytes.isEmpty else { throw ValidationError("the value of \(label) is empty") }
    return SecretBytes(copying: bytes, label: label)
}
