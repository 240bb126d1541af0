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
                let rows = try db.query("""
                    SELECT t.public_id, p.handle, t.name, t.created_at, t.revoked_at FROM api_tokens t
                    JOIN people p ON p.id = t.person_id ORDER BY t.id
                    """) { row in
                    [row.text(0), row.text(1), row.text(2), Clock.rfc3339(row.int(3)), row.optionalInt(4).map { "revoked " + Clock.rfc3339($0) } ?? "active"]
                }
                print(["ID", "PERSON", "NAME", "CREATED", "STATE"].joined(separator: "\t"))
                for row in rows { print(row.joined(separator: "\t")) }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (the part after drv_).")
            @OptionGroup var state: StateOptions
            @Argument(help: "The token's id as `tokens list` shows it.") var id: String

            func run() throws {
                let db = try state.open()
                let now = Clock.now()
                let revoked = try db.immediate { tx -> Bool in
                    try tx.db.run("UPDATE api_tokens SET revoked_at = ?2 WHERE public_id = ?1 AND revoked_at IS NULL", [.text(id), .int(now)])
                    guard tx.db.changes == 1 else { return false }
                    try Audit.record(tx, at: now, actor: state.operatorName, action: "token.revoke", subject: "token/\(id)")
                    return true
                }
                guard revoked else { throw ValidationError("no active token \(id)") }
                print("revoked \(id)")
            }
        }
    }
}
