import Testing

@testable import DravenCore
@testable import DravenFunctions

/// Every row of every table of a store (the tables `sqlite_master` lists), every column, rows in
/// storage order (by rowid; by primary key for a table without one). Refusals are checked by
/// comparing two of these whole: nothing may change but the rows the refusal contract names.
struct StoreSnapshot: Equatable {
    /// One stored value, with its SQLite storage class.
    enum Value: Equatable, CustomStringConvertible {
        case null
        case int(Int64)
        case real(Double)
        case text(String)
        case blob([UInt8])

        var description: String {
            switch self {
            case .null: "NULL"
            case .int(let v): "\(v)"
            case .real(let v): "\(v)"
            case .text(let v): "'\(v)'"
            case .blob(let v): "X'\(Hex.encode(v))'"
            }
        }

        var text: String? { if case .text(let v) = self { v } else { nil } }
        var int: Int64? { if case .int(let v) = self { v } else { nil } }
    }

    struct Table: Equatable {
        var columns: [String]
        var rows: [[Value]]

        /// The rows as column name → value.
        var records: [[String: Value]] {
            rows.map { Dictionary(uniqueKeysWithValues: zip(columns, $0)) }
        }
    }

    var tables: [String: Table]

    init(tables: [String: Table]) { self.tables = tables }

    init(_ db: Database) throws {
        tables = [:]
        let list = "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        for (name, sql) in try db.query(list, [], { ($0.text(0), $0.optionalText(1) ?? "") }) {
            let info = try db.query("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid", [.text(name)]) {
                (name: $0.text(0), pk: $0.int(1))
            }
            let quoted = info.map { "\"\($0.name)\"" }
            let order =
                sql.uppercased().contains("WITHOUT ROWID")
                ? info.filter { $0.pk > 0 }.sorted { $0.pk < $1.pk }.map { "\"\($0.name)\"" }.joined(separator: ", ")
                : "rowid"
            let select = quoted.map { "typeof(\($0)), \($0)" }.joined(separator: ", ")
            let rows = try db.query("SELECT \(select) FROM \"\(name)\" ORDER BY \(order)") { row in
                (0..<Int32(info.count)).map { Self.value(row, 2 * $0) }
            }
            tables[name] = Table(columns: info.map { $0.name }, rows: rows)
        }
    }

    private static func value(_ row: Statement, _ i: Int32) -> Value {
        switch row.text(i) {
        case "integer": .int(row.int(i + 1))
        case "real": .real(row.double(i + 1))
        case "text": .text(row.text(i + 1))
        case "blob": .blob(row.blob(i + 1))
        default: .null
        }
    }

    subscript(_ table: String) -> Table { tables[table] ?? Table(columns: [], rows: []) }

    /// The tables whose rows differ from `other`'s, each with the rows only one side has.
    func changes(since other: StoreSnapshot) -> [String: (gone: [[Value]], new: [[Value]])] {
        var out: [String: (gone: [[Value]], new: [[Value]])] = [:]
        for name in Set(tables.keys).union(other.tables.keys) where self[name] != other[name] {
            let mine = self[name].rows
            let theirs = other[name].rows
            out[name] = (theirs.filter { !mine.contains($0) }, mine.filter { !theirs.contains($0) })
        }
        return out
    }
}

/// A function's answer to one request made in process, with the store before and after it.
struct Exchange {
    var response: Response
    var before: StoreSnapshot
    var after: StoreSnapshot
    /// The outbox rows the request committed: what `CGI.serve` would hand to `draven-deliver`.
    var outbox: [Int64]
    var requestID: String
    var function: String
    var method: String
    var path: String
    var now: Int64
    /// `REMOTE_ADDR` as a refusal records it; empty when the request was refused before it was read
    /// (`Context.auditRefusal` then falls back to the process's own `REMOTE_ADDR`).
    var remote: String
    /// Whether the request was read (false: refused from its CONTENT_LENGTH alone).
    var read: Bool

    var status: Int { response.status }
    var body: String { String(decoding: response.body, as: UTF8.self) }
    var json: JSON? { try? JSON.parse(response.body) }

    func header(_ name: String) -> String? {
        response.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The problem type's name (`unauthenticated`, …) when the answer is problem+json.
    var problemType: String? {
        guard header("Content-Type") == "application/problem+json" else { return nil }
        return json?["type"]?.stringValue.map { String($0.dropFirst(Problem.typeBase.count)) }
    }
}

/// Runs functions' `respond` in process, against a `TestStore`, through `CGI.handle`: the path
/// `CGI.serve` takes after reading a request (the problem+json answer for what a handler throws,
/// refusals audited), with the request read from CGI meta-variables by `CGI.request`, as from nginx.
/// Owns the store, one API token per person, and (with `secrets`) a secrets store.
final class Harness {
    let store: TestStore
    var tokens: [String: String] = [:]
    /// `REMOTE_ADDR` of every request.
    var remote = "192.0.2.7"
    /// Off while a test sets up its store: then `Exchange.before` and `.after` are empty.
    var snapshots = true

    init(config: String, people: [String], secrets: [String: String] = [:]) throws {
        store = try TestStore(config: config)
        let key = try Tokens.loadKey(store.paths)
        for person in people {
            tokens[person] = try store.db.immediate { tx in
                try Tokens.create(tx, person: person, name: "test", key: key, now: store.now).plaintext
            }
        }
        guard !secrets.isEmpty else { return }
        let paths = SecretsPaths(store.paths)
        try SecretsAdmin.initialize(paths, db: store.db, actor: "test", now: store.now)
        try SecretsAdmin.update(paths, db: store.db, actor: "test", now: store.now) { draft in
            for (name, value) in secrets {
                try draft.set(name, kind: .hmac, value: SecretBytes(copying: Array(value.utf8), label: name))
            }
            return ((), Array(secrets.keys))
        }
    }

    /// A copy of `other`'s store (see `TestStore(copying:)`) and tokens.
    init(copying other: Harness) throws {
        store = try TestStore(copying: other.store)
        tokens = other.tokens
        remote = other.remote
    }

    var now: Int64 { store.now }

    /// `target` is the path with its query string; `token` a person (their token) or a token's text.
    func call<F: Function>(
        _ function: F.Type, _ method: String, _ target: String, body: [UInt8] = [],
        contentType: String? = nil, token: String? = nil,
        headers: [String: String] = [:]
    ) throws -> Exchange {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var meta = [
            "REQUEST_METHOD": method, "REQUEST_URI": target, "PATH_INFO": String(parts[0]),
            "QUERY_STRING": parts.count > 1 ? String(parts[1]) : "", "REMOTE_ADDR": remote,
            "CONTENT_LENGTH": body.isEmpty ? "" : String(body.count),
            "CONTENT_TYPE": contentType ?? "",
        ]
        if let token { meta["HTTP_AUTHORIZATION"] = "Bearer " + (tokens[token] ?? token) }
        for (name, value) in headers {
            meta["HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })] = value
        }
        let before = snapshots ? try StoreSnapshot(store.db) : StoreSnapshot(tables: [:])
        let context = Context(paths: store.paths, function: F.name, now: store.now)
        let response: Response
        var read = false
        do {
            let request = try CGI.request(
                environment: { each in
                    for (name, value) in meta {
                        Array(name.utf8).withUnsafeBufferPointer { n in
                            Array(value.utf8).withUnsafeBufferPointer { each(n, $0) }
                        }
                    }
                }, limit: { CGI.maxBody(default: F.maxBodyBytes(path: $0)) },
                body: { n in
                    guard n <= body.count else { throw DravenError.malformed("the body ended early") }
                    return Array(body.prefix(n))
                })
            read = true
            response = CGI.handle(F.self, request: request, context: context)
        } catch {
            response = CGI.answer(error, context: context)
        }
        let outbox = context.finish()
        return Exchange(
            response: response, before: before, after: snapshots ? try StoreSnapshot(store.db) : before, outbox: outbox,
            requestID: context.requestID, function: F.name, method: method, path: String(parts[0]),
            now: store.now, remote: read ? remote : Environment.get("REMOTE_ADDR") ?? "", read: read)
    }

    func call<F: Function>(
        _ function: F.Type, _ method: String, _ target: String, json: JSON, token: String? = nil,
        headers: [String: String] = [:]
    ) throws -> Exchange {
        try call(
            function, method, target, body: json.serializedBytes(), contentType: "application/json", token: token,
            headers: headers)
    }

    /// `X-Draven-Timestamp` and `X-Draven-Signature` for `body`, signed with the runner secret `secret`.
    static func runnerHeaders(_ body: [UInt8], secret: String, at timestamp: Int64) -> [String: String] {
        let key = SecretBytes(copying: Array(secret.utf8), label: "runner")
        let mac = Sodium.hmacSHA256(key: key, message: Array("\(timestamp).".utf8) + body)
        return ["X-Draven-Timestamp": String(timestamp), "X-Draven-Signature": "v1=" + Hex.encode(mac)]
    }
}

/// What a refusal may write besides its answer (README: a refused request changes nothing but its
/// record): one chained `audit` record for a caller who proved who they are, or one count in
/// `refusal_counts` for a client that proved nothing.
enum RefusalRecord: Sendable, CustomStringConvertible {
    case audited(actor: String, subject: String)
    case counted

    var description: String {
        switch self {
        case .audited(let actor, let subject): "audited as \(actor) on \(subject)"
        case .counted: "counted"
        }
    }
}

extension Exchange {
    /// Expects a problem+json answer of `status` and `type`, no outbox row, every table unchanged
    /// but for exactly the one record `record` names, its every column as `Context.auditRefusal`
    /// writes it.
    func expectRefused(
        _ status: Int, _ type: String, _ record: RefusalRecord,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let problem = json
        #expect(self.status == status, "\(body)", sourceLocation: sourceLocation)
        #expect(header("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
        #expect(problemType == type, "\(body)", sourceLocation: sourceLocation)
        #expect(problem?["status"]?.intValue == Int64(status), sourceLocation: sourceLocation)
        #expect(problem?["title"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        let detail = problem?["detail"]?.stringValue ?? ""
        #expect(!detail.isEmpty, sourceLocation: sourceLocation)
        expectRecorded(status: status, type: type, detail: detail, record, sourceLocation: sourceLocation)
    }

    /// Expects every table unchanged but for the refusal's own record (a chat refusal answers 200
    /// with a message; its record is the same as an API refusal's).
    func expectRecorded(
        status: Int, type: String, detail: String, _ record: RefusalRecord,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(outbox.isEmpty, "a refusal hands nothing to the deliverer", sourceLocation: sourceLocation)
        let changed = after.changes(since: before)
        let others = changed.keys.filter { !["audit", "refusal_counts", "refusal_totals"].contains($0) }.sorted()
        #expect(
            others.isEmpty, "tables changed: \(others.map { "\($0): \(changed[$0]!)" })",
            sourceLocation: sourceLocation)
        // What /metrics counts of refusals (refusal_totals): at most one count more, nothing else.
        let key = ["what", "provider", "project", "environment_id"]
        let totals = { (records: [[String: StoreSnapshot.Value]]) in
            Dictionary(
                records.map { r in (key.map { "\(r[$0] ?? .null)" }, r["count"]?.int ?? 0) }, uniquingKeysWith: +)
        }
        let (old, new) = (totals(before["refusal_totals"].records), totals(after["refusal_totals"].records))
        #expect(
            old.allSatisfy { new[$0.key, default: 0] >= $0.value }
                && (0...1).contains(new.values.reduce(0, +) - old.values.reduce(0, +)),
            "refusal_totals: \(old) -> \(new)", sourceLocation: sourceLocation)
        switch record {
        case .audited(let actor, let subject):
            #expect(after["refusal_counts"] == before["refusal_counts"], sourceLocation: sourceLocation)
            expectAuditRecord(
                status: status, type: type, detail: detail, actor: actor, subject: subject,
                sourceLocation: sourceLocation)
        case .counted:
            #expect(after["audit"] == before["audit"], sourceLocation: sourceLocation)
            expectCounted(status: status, type: type, detail: detail, sourceLocation: sourceLocation)
        }
    }

    private func expectAuditRecord(
        status: Int, type: String, detail: String, actor: String, subject: String,
        sourceLocation: SourceLocation
    ) {
        let old = before["audit"].rows
        let new = after["audit"].rows
        #expect(Array(new.prefix(old.count)) == old, "earlier audit records changed", sourceLocation: sourceLocation)
        guard new.count == old.count + 1, let row = after["audit"].records.last else {
            Issue.record("expected one new audit record, got \(new.count - old.count)", sourceLocation: sourceLocation)
            return
        }
        let lastID = before["audit"].records.last?["id"]?.int ?? 0
        let prev = before["audit"].records.last?["hash"]?.text ?? Audit.genesis
        var recorded: JSONObject = [
            "status": .int(Int64(status)), "type": .string(Problem.typeBase + type),
            "detail": .string(detail), "method": .string(method), "path": .string(path),
            "request_id": .string(requestID),
        ]  // an audited caller's request was read
        if function == Console.name { recorded["via"] = .string("console") }  // Context.via
        let text = JSON.object(recorded).serialized()
        let hash = Audit.digest(
            prev: prev, at: now, actor: actor, action: "\(function).refused", subject: subject,
            outcome: "refused", detail: text)
        let expected: [String: StoreSnapshot.Value] = [
            "id": .int(lastID + 1), "at": .int(now), "actor": .text(actor), "action": .text("\(function).refused"),
            "subject": .text(subject), "outcome": .text("refused"), "detail": .text(text), "prev_hash": .text(prev),
            "hash": .text(hash),
        ]
        #expect(row == expected, sourceLocation: sourceLocation)
    }

    private func expectCounted(status: Int, type: String, detail: String, sourceLocation: SourceLocation) {
        let table = after["refusal_counts"]
        let key = { (r: [String: StoreSnapshot.Value]) in
            [r["client"], r["function"], r["problem"], r["bucket"]].map { $0 ?? .null }
        }
        let old = before["refusal_counts"].records
        let new = table.records
        let bucket = now - now % RefusalCounts.bucketSeconds
        let wanted: [StoreSnapshot.Value] = [.text(remote), .text(function), .text(type), .int(bucket)]
        let previous = old.first { key($0) == wanted }
        var expected: [String: StoreSnapshot.Value] = [
            "client": wanted[0], "function": wanted[1], "problem": wanted[2], "bucket": wanted[3],
            "status": .int(Int64(status)), "first_at": .int(now), "last_at": .int(now), "count": .int(1),
            "last_path": .text(read ? path : ""), "last_detail": .text(detail),
        ]
        if let previous {
            expected["first_at"] = previous["first_at"]
            expected["count"] = .int((previous["count"]?.int ?? 0) + 1)
        }
        let untouched = old.filter { key($0) != wanted }
        #expect(new.filter { key($0) != wanted } == untouched, "other counters changed", sourceLocation: sourceLocation)
        #expect(new.filter { key($0) == wanted } == [expected], sourceLocation: sourceLocation)
    }
}

extension Exchange {
    /// Expects every table exactly as before and nothing handed to the deliverer.
    func expectUnchanged(_ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outbox.isEmpty, comment, sourceLocation: sourceLocation)
        #expect(
            after == before, "\(comment.map { "\($0): " } ?? "")changed: \(after.changes(since: before))",
            sourceLocation: sourceLocation)
    }
}
