import ArgumentParser
import DravenCore
import Foundation

extension Draven {
    /// `draven console link`: one-time sign-in links for the web console.
    struct ConsoleCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "console", abstract: "The web console: one-time sign-in links.", subcommands: [Link.self])

        struct Link: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print a one-time sign-in link for a person (single use; only its keyed hash is stored).")
            @OptionGroup var state: StateOptions
            @Option(help: "The person's handle, from the applied configuration.") var person: String
            @Option(help: "How long the link may be used: 90s, 15m, 2h (default 15m, at most 24h).") var ttl = "15m"
            @Option(
                name: .customLong("url"),
                help: "draven's public base URL (default: $DRAVEN_URL, else $DRAVEN_API, else http://127.0.0.1:8080).")
            var url: String?

            func validate() throws {
                guard Self.seconds(ttl) != nil else { throw ValidationError("--ttl: use e.g. 90s, 15m or 2h") }
            }

            /// `90s`, `15m`, `2h` or plain seconds.
            static func seconds(_ text: String) -> Int64? {
                guard let unit = text.last else { return nil }
                let factors: [Character: Int64] = ["s": 1, "m": 60, "h": 3600]
                let factor = factors[unit]
                if let factor, let n = Int64(text.dropLast()), n > 0 { return n * factor }
                return Int64(text).flatMap { $0 > 0 ? $0 : nil }
            }

            func run() throws {
                let db = try state.open()
                var key = try DravenCore.Tokens.loadKey(state.paths)
                defer { Sodium.wipe(&key) }
                let env = ProcessInfo.processInfo.environment
                let base = (url ?? env["DRAVEN_URL"] ?? env["DRAVEN_API"] ?? "http://127.0.0.1:8080")
                    .trimmingCharacters(in: CharacterSet(charactersIn: "/"))
                do {
                    let created = try db.immediate { tx in
                        try SignInLinks.create(
                            tx, person: person, ttl: Self.seconds(ttl) ?? SignInLinks.defaultTTL,
                            actor: state.operatorName, key: key, now: Clock.now())
                    }
                    print(base + "/ui/link/" + created.token)
                    warn(
                        "link \(created.publicID) for \(person), usable once until \(Clock.rfc3339(created.expiresAt))")
                } catch DravenError.notFound(let what) {
                    throw ValidationError(what)
                } catch DravenError.invalidField(_, let reason) {
                    throw ValidationError("--ttl: \(reason)")
                }
            }
        }
    }

    /// `draven sessions list|revoke`: the web console's signed-in browsers.
    struct SessionsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sessions", abstract: "List and revoke web console sessions.",
            subcommands: [List.self, Revoke.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List sessions (never their secrets).")
            @OptionGroup var state: StateOptions

            func run() throws {
                let db = try state.open()
                let now = Clock.now()
                print(["ID", "PERSON", "METHOD", "REMOTE", "CREATED", "LAST SEEN", "STATE"].joined(separator: "\t"))
                for s in try DravenCore.Sessions.list(db) {
                    let state =
                        s.revokedAt.map { "revoked " + Clock.rfc3339($0) }
                        ?? (s.endsAt <= now
                            ? "ended " + Clock.rfc3339(s.endsAt) : "active until " + Clock.rfc3339(s.endsAt))
                    print(
                        [
                            s.publicID, s.person, s.method, s.remote, Clock.rfc3339(s.createdAt),
                            Clock.rfc3339(s.lastSeenAt), state,
                        ]
                        .joined(separator: "\t"))
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "End a session by its id (from `sessions list`).")
            @OptionGroup var state: StateOptions
            @Argument(help: "The session's id as `sessions list` shows it.") var id: String

            func run() throws {
                let db = try state.open()
                let now = Clock.now()
                let revoked = try db.immediate { tx in
                    try DravenCore.Sessions.revoke(tx, publicID: id, actor: state.operatorName, now: now)
                }
                guard revoked else { throw ValidationError("no active session \(id)") }
                print("revoked \(id)")
            }
        }
    }
}
