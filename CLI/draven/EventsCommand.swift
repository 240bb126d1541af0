import ArgumentParser
import DravenCore
import DravenOutbound
import Foundation

extension Draven {
    /// `draven events`: the event stream's record, read from the store (README, "Event stream").
    struct EventsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "events", abstract: "The event stream: what was sent to subscribers, and replays.",
            subcommands: [List.self, Log.self, Redeliver.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Events and how each subscriber's delivery stands, oldest first.")
            @Option(help: "Only events since this time (RFC 3339, Unix seconds, or a span ago: 30m, 2h, 1d).")
            var since: String?
            @Option(help: "At most this many (default 50; the newest when --since is not given).") var limit = 50
            @OptionGroup var state: StateOptions

            func run() throws {
                let db = try state.open()
                let events =
                    try since.map { try Events.since(db, try seconds($0), limit: limit) }
                    ?? Events.recent(db, limit: limit)
                guard !events.isEmpty else { return print("no events") }
                var rows: [[String]] = []
                for event in events {
                    let streams = try Events.streams(db, event: event.id).map { s in
                        "\(s.subscription) #\(s.sequence) \(s.state ?? "?") (\(s.attempts)"
                            + (s.lastStatus.map { ", \($0)" } ?? "") + ")"
                    }
                    rows.append([
                        String(event.id), Clock.rfc3339(event.at), event.name, event.subject,
                        streams.joined(separator: "; "),
                    ])
                }
                print(
                    Text.table(["ID", "AT", "EVENT", "SUBJECT", "SUBSCRIBER #SEQ STATE (ATTEMPTS, LAST STATUS)"], rows))
            }
        }

        struct Log: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "An event's delivery log: every attempt, its status or why none came.")
            @Argument(help: "The event: its number (draven events list) or its CloudEvents id.") var event: String
            @OptionGroup var state: StateOptions

            func run() throws {
                let db = try state.open()
                guard let found = try Events.find(db, named: event) else { throw ValidationError("no event \(event)") }
                print("event \(found.id) \(found.eventID): \(found.name) (\(found.type)) of \(found.subject)")
                if let trace = found.traceparent { print("traceparent: \(trace)") }
                let attempts = try Events.attempts(db, event: found.id)
                guard !attempts.isEmpty else { return print("no attempts yet") }
                let rows = attempts.map { a in
                    [
                        a.subscription, String(a.attempt), Clock.rfc3339(a.at), a.status.map(String.init) ?? "-",
                        "\(a.durationMS) ms", a.error ?? "",
                    ]
                }
                print(Text.table(["SUBSCRIBER", "ATTEMPT", "AT", "STATUS", "TOOK", "ERROR"], rows))
            }
        }

        struct Redeliver: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Send events again, with their ids and sequence numbers unchanged.",
                discussion: "Each replay joins the end of its subscriber's stream (after what is still waiting) "
                    + "and is delivered now; what cannot be delivered now is retried by draven sweep.")
            @Argument(help: "The event: its number or its CloudEvents id.") var event: String?
            @Option(help: "Every event since this time (RFC 3339, Unix seconds, or a span ago: 30m, 2h, 1d).")
            var since: String?
            @Option(help: "Only to this subscription.") var subscription: String?
            @OptionGroup var state: StateOptions

            func validate() throws {
                guard (event == nil) != (since == nil) else {
                    throw ValidationError("name an event or --since, not both")
                }
            }

            func run() throws {
                let db = try state.open()
                let events: [Events.Event]
                if let event {
                    guard let found = try Events.find(db, named: event) else {
                        throw ValidationError("no event \(event)")
                    }
                    events = [found]
                } else {
                    events = try Events.since(db, try seconds(since ?? ""), limit: 100_000)
                }
                let actor = "cli:" + (ProcessInfo.processInfo.environment["USER"] ?? "unknown")
                let now = Clock.now()
                let rows = try db.immediate { tx in
                    try events.flatMap {
                        try Events.redeliver(tx, event: $0.id, subscription: subscription, actor: actor, now: now)
                    }
                }
                guard !rows.isEmpty else { return print("nothing to redeliver (no configured subscriber took them)") }
                var delivery = Delivery(db: db, paths: state.paths, transport: CurlTransport())
                try delivery.deliver(rows)
                print("\(rows.count) deliveries of \(events.count) events queued and sent (draven events list)")
            }
        }
    }
}

/// A time on the command line: RFC 3339, Unix seconds, or a span before now (`30m`, `2h`, `1d`).
private func seconds(_ text: String) throws -> Int64 {
    if let n = Int64(text) { return n }
    if let at = Text.seconds(text) { return at }
    let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = text.last.flatMap({ units[$0] }), let n = Int64(text.dropLast()), n >= 0 {
        return Clock.now() - n * unit
    }
    throw ValidationError("\(text) is not a time: use RFC 3339, Unix seconds, or a span such as 30m, 2h, 1d")
}
