/// The event stream's configuration: `[events]` with its `source` and `[[events.subscriptions]]`.
/// `Config.validate` checks it (`validate`); `ConfigApply` stores it as the `events` setting;
/// the transaction that publishes an event and the deliverer read it back (`load`).
///
/// ```toml
/// [events]
/// source = "https://deploy.example.com"     # the CloudEvents source (default "/draven")
/// [[events.subscriptions]]
/// id = "audit-lake"                         # the stream's name: its order and sequence numbers
/// url_secret = "events-audit-lake-url"      # a secret holding the receiver's URL (it may carry a token)
/// signing_secret = "events-audit-lake-key"  # a secret holding the Standard Webhooks key, whsec_<base64>
/// events = ["job.*", "plan_run.finished"]   # EventFilter
/// max_attempts = 8                          # then the delivery is dead (default 8, 1 to 50)
/// ```
package struct Subscriptions: Sendable {
    package struct Subscription: Sendable {
        package var id: String
        package var urlSecret: String
        package var signingSecret: String
        package var filter: EventFilter
        package var maxAttempts: Int
    }

    package static let defaultSource = "/draven"
    package static let defaultMaxAttempts = 8

    package var source = Subscriptions.defaultSource
    package var all: [Subscription] = []

    package func named(_ id: String) -> Subscription? { all.first { $0.id == id } }

    /// The configuration's `[events]` table checked, as the JSON object the setting stores.
    static func validate(_ table: JSONObject, _ problems: inout [ConfigError.Problem]) -> JSONObject {
        var r = TableReader(table, path: "events")
        var stored: JSONObject = [:]
        if let source = r.string("source", &problems) {
            if source.isEmpty || source.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7f }) {
                problems.append(.init(key: "events.source", reason: "must be a URI reference (no spaces)"))
            }
            stored["source"] = .string(source)
        }
        var subscriptions: [JSON] = []
        var seen: Set<String> = []
        if let value = r.value("subscriptions") {
            guard let items = value.arrayValue else {
                problems.append(
                    .init(key: "events.subscriptions", reason: "must be an array of tables ([[events.subscriptions]])"))
                r.finish(&problems)
                return stored
            }
            for (i, item) in items.enumerated() {
                let path = "events.subscriptions[\(i)]"
                guard let object = item.objectValue else {
                    problems.append(.init(key: path, reason: "must be a table"))
                    continue
                }
                var s = TableReader(object, path: path)
                let id = s.string("id", &problems, required: true)
                if let id {
                    if !Config.isName(id) {
                        problems.append(
                            .init(key: path + ".id", reason: "may contain only letters, digits, '.', '_' and '-'"))
                    } else if !seen.insert(id).inserted {
                        problems.append(.init(key: path + ".id", reason: "\"\(id)\" names another subscription too"))
                    }
                }
                _ = s.string("url_secret", &problems, required: true)
                _ = s.string("signing_secret", &problems, required: true)
                if let events = s.strings("events", &problems) {
                    if case .failure(let error) = EventFilter.parse(events) {
                        problems.append(.init(key: path + ".events", reason: error.reason))
                    }
                } else if s.object["events"] == nil {
                    problems.append(.init(key: path + ".events", reason: "is required (e.g. [\"job.*\"] or [\"*\"])"))
                }
                _ = s.int("max_attempts", &problems, range: 1...50)
                s.finish(&problems)
                subscriptions.append(.object(object))
            }
        }
        stored["subscriptions"] = .array(subscriptions)
        r.finish(&problems)
        return stored
    }

    /// The subscriptions the last applied configuration declares (none when it has no `[events]`).
    package static func load(_ db: Database) throws -> Subscriptions {
        guard let text = try Settings.get(db, "events"), let object = try? JSON.parse(text).objectValue else {
            return Subscriptions()
        }
        var out = Subscriptions()
        if let source = object["source"]?.stringValue { out.source = source }
        for item in object["subscriptions"]?.arrayValue ?? [] {
            guard let id = item["id"]?.stringValue, let url = item["url_secret"]?.stringValue,
                let key = item["signing_secret"]?.stringValue,
                case .success(let filter) = EventFilter.parse(
                    item["events"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            else { continue }
            let attempts = item["max_attempts"]?.intValue.map(Int.init) ?? defaultMaxAttempts
            out.all.append(
                Subscription(id: id, urlSecret: url, signingSecret: key, filter: filter, maxAttempts: attempts))
        }
        return out
    }
}
