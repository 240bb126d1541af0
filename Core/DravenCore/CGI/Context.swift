/// What a function may use while answering one request. The store is opened on first use, so a
/// request refused before it needs the store (too large, wrong method) never opens it.
package final class Context {
    package let paths: Paths
    package let function: String
    package let requestID: String
    package let now: Int64
    package var request: Request?
    /// Who made the request, once authenticated; refusals are audited under this name.
    package var principal: Principal?
    /// What the request is about (e.g. `shop/prod`), for the audit record of a refusal.
    package var subject: String = ""
    /// Who is asking when no API token says so (a chat user, `slack:U0123`), for the audit trail.
    package var caller: String?
    /// Where the request comes from when not the API (`console`): the audit records it writes say so.
    package var via: String?
    /// What a refusal of this request counts besides its audit record (a webhook refused, a stale
    /// fencing token, for `/metrics`): run by `auditRefusal` in the refusal's own transaction.
    package var countRefusal: ((Transaction) throws -> Void)?
    private var database: Database?

    package init(paths: Paths, function: String, now: Int64 = Clock.now()) {
        self.paths = paths
        self.function = function
        self.now = now
        self.requestID = Hex.encode(Sodium.randomBytes(8))
    }

    /// The store, opened and checked on first use.
    /// - Throws: `DravenError.storeNotReady` when the database is missing or not migrated.
    package func db() throws -> Database {
        if let database { return database }
        let db: Database
        do {
            db = try Database(path: paths.database, create: false)
        } catch {
            throw DravenError.storeNotReady("no database at the configured state directory; run `draven init`")
        }
        guard try Migrations.isCurrent(db) else {
            throw DravenError.storeNotReady("the database needs migrating; run `draven migrate`")
        }
        db.auditVia = via
        db.traceparent = TraceContext.parse(request?.header("traceparent"))
        database = db
        return db
    }

    /// Returns the outbox rows the request committed, for `draven-deliver`, and closes the store
    /// (checkpointing as SQLite does on close) unless the process is about to exit or exec anyway with
    /// `draven sweep` holding the store open (`Database.isHeldByService`). Called after the
    /// response has been sent.
    func finish() -> [Int64] {
        let outbox = database?.takeCommittedOutbox() ?? []
        // Exec'ing draven-deliver closes SQLite's descriptors too (all O_CLOEXEC), locks and all.
        if database?.isHeldByService == true { return outbox }
        database = nil
        return outbox
    }

    /// The audit actor for this request: the person's handle, or `anonymous@<address>`.
    package var actor: String {
        principal.map { $0.handle } ?? caller ?? "anonymous@\(request?.remoteAddress ?? "")"
    }

    /// Records a refused request. A caller who proved who they are (an API token, a verified chat
    /// user) gets one chained audit record per refusal; a client that proved nothing is counted
    /// (`RefusalCounts`: per address, function, problem type and hour), so anonymous traffic cannot
    /// grow the audit trail. What comes from the request is stored capped at 256 bytes a field
    /// (`truncated` lists the fields cut). Best effort: if the store itself is the problem, there
    /// is nowhere to record it, and the answer already says so.
    package func auditRefusal(_ problem: Problem) {
        guard let db = try? db() else { return }
        let limit = RefusalCounts.fieldLimit
        let path = request?.path ?? ""
        do {
            try db.immediate { tx in
                try countRefusal?(tx)
                guard principal != nil || caller != nil else {
                    let client = request?.remoteAddress ?? Environment.get("REMOTE_ADDR") ?? ""
                    try RefusalCounts.record(
                        tx, at: now, client: client, function: function, problem: problem,
                        path: path)
                    return
                }
                var truncated: [JSON] = []
                func cap(_ name: String, _ value: String) -> String {
                    let (text, cut) = value.capped(limit)
                    if cut { truncated.append(.string(name)) }
                    return text
                }
                var detail: JSONObject = [
                    "status": .int(Int64(problem.status)), "type": .string(problem.type),
                    "detail": .string(cap("detail", problem.detail)),
                ]
                if let request {
                    detail["method"] = .string(cap("method", request.method))
                    detail["path"] = .string(cap("path", path))
                }
                detail["request_id"] = .string(requestID)
                let who = cap("actor", self.actor)
                let what = cap("subject", self.subject)
                if !truncated.isEmpty { detail["truncated"] = .array(truncated) }
                try Audit.record(
                    tx, at: now, actor: who, action: "\(function).refused", subject: what,
                    outcome: "refused", detail: detail)
            }
        } catch {
            Log.error("could not audit a refusal", ["request.id": requestID, "error": "\(error)"])
        }
    }
}
