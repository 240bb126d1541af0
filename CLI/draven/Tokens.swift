import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    struct Tokens: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list and revoke API tokens.",
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a token for a person and print it once. Only a keyed hash is stored.")
            @OptionGroup var state: StateOptions
            @Option(help: "The person's handle, from the applied configuration.") var person: String
            @Option(help: "A label, e.g. the machine or tool using it.") var name: String = ""

            func run() throws {
                let db = try state.open()
                var key = try DravenCore.Tokens.loadKey(state.paths)
                defer { Sodium.wipe(&key) }
                do {
                    let created = try db.immediate { tx in
                        try DravenCore.Tokens.create(tx, person: person, name: name, key: key, now: Clock.now())
                    }
                    print(created.plaintext)
                    warn("token \(created.publicID) for \(person) created; it is shown only this once")
                } catch DravenError.notFound(let what) {
                    throw ValidationError(what)
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List tokens (never their values).")
            @OptionGroup var state: StateOptions

            func run() throws {
                let db = try state.open()
                print(["ID", "PERSON", "NAME", "CREATED", "STATE"].joined(separator: "\t"))
                for t in try DravenCore.Tokens.list(db) {
                    let state = t.revokedAt.map { "revoked " + Clock.rfc3339($0) } ?? "active"
                    print([t.publicID, t.person, t.name, Clock.rfc3339(t.createdAt), state].joined(separator: "\t"))
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (the part after drv_).")
            @OptionGroup var state: StateOptions
            @Argument(help: "The token's id as `tokens list` shows it.") var id: String

            func run() throws {
                let db = try state.open()
                let now = Clock.now()
                let revoked = try db.immediate { tx in
                    try DravenCore.Tokens.revoke(tx, publicID: id, actor: state.operatorName, now: now)
                }
                guard revoked else { throw ValidationError("no active token \(id)") }
                print("revoked \(id)")
            }
        }
    }
}
