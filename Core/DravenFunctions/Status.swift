package import DravenCore

/// Read-only views: `GET /api/v1/jobs/{id}` (the job and its events), `GET /api/v1/jobs/{id}/log` (its
/// archived log), `GET /api/v1/jobs`
/// (recent jobs, `?project=&environment=&state=&limit=`), `GET /api/v1/locks`,
/// `GET /api/v1/releases?project=&environment=&limit=` (release history, newest first), `GET /metrics`
/// (Prometheus text, `metrics` grant) and `GET /` (service index, no token). Jobs and locks are shown only
/// where the caller holds a `read` grant.
package enum Status: RoutedFunction {
    package static let name = "status"
    package static let maxBodyBytes = 0

    package static let router = Router<RouteHandler>([
        (Route("GET", "/"), { @Sendable _, _, _ in index }),
        (Route("GET", "/api/v1/jobs/{id}"), job),
        (Route("GET", "/api/v1/jobs/{id}/log"), log),
        (Route("GET", "/api/v1/jobs"), jobs),
        (Route("GET", "/api/v1/locks"), locks),
        (Route("GET", "/api/v1/releases"), releases),
        (Route("GET", "/metrics"), metrics),
    ])

    /// The JSON index (`ServiceIndex`, which the console answers too for API clients).
    static var index: Response { ServiceIndex.response }

    static func job(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, job) = try Authenticator.readableJob(request, params, context)
        var body = job.json
        body["events"] = .array(try JobEvent.list(db, job: job.id).map(\.json))
        return Response(status: 200, json: .object(body))
    }

    /// `GET /api/v1/jobs/{id}/log[?after=SEQ]`: the job's archived log (`JobLogs`), the bytes of
    /// every chunk after seq `after` (default 0: all), in order, as `text/plain; charset=utf-8`
    /// (the bytes as the runner sent them, masked; not checked to be UTF-8). Headers:
    /// `Draven-Log-Seq` the newest chunk the answer covers (`after` when none: poll with it next),
    /// `Draven-Log-Complete: true` once the job has ended (nothing more will be appended: the state
    /// is read before the chunks, and a chunk is stored only while its job holds the lock),
    /// `Draven-Log-Truncated: true` once the per-job cap cut the log, `Draven-Log-Pruned` (the time)
    /// once `draven sweep` removed it after the retention period. A `read` grant, like the job.
    static func log(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let (db, job) = try Authenticator.readableJob(request, params, context)
        var after: Int64 = 0
        if let raw = request.queryItems["after"] {
            guard let n = Int64(raw), n >= 0, raw.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw DravenError.invalidField(pointer: "after", reason: "must be a seq: an integer from 0")
            }
            after = n
        }
        let log = try JobLogs.read(db, job: job.id, after: after)
        var headers: [(String, String)] = [
            ("Content-Type", "text/plain; charset=utf-8"), ("Draven-Log-Seq", String(log.lastSeq)),
            ("Draven-Log-Complete", job.state.isTerminal ? "true" : "false"), ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if log.cut { headers.append(("Draven-Log-Truncated", "true")) }
        if let pruned = log.prunedAt { headers.append(("Draven-Log-Pruned", Clock.rfc3339(pruned))) }
        return Response(status: 200, headers: headers, body: log.bytes)
    }

    static func jobs(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        let q = request.queryItems
        var limit = 50
        if let raw = q["limit"] {
            guard let n = Int(raw), (1...500).contains(n) else {
                throw DravenError.invalidField(pointer: "limit", reason: "must be 1 to 500")
            }
            limit = n
        }
        if let state = q["state"], JobState(rawValue: state) == nil {
            throw DravenError.invalidField(pointer: "state", reason: "is not a job state")
        }
        var readable = Readable(db: db, principal: principal)
        let list = try Job.list(
            db, project: q["project"], environment: q["environment"], state: q["state"], limit: limit
        )
        .filter { try readable.allows($0.project, $0.environment) }
        return Response(status: 200, json: .object(["jobs": .array(list.map { JSON.object($0.json) })]))
    }

    static func locks(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        var readable = Readable(db: db, principal: principal)
        let list = try Locks.all(db).filter {
            try readable.allows($0["project"]?.stringValue ?? "", $0["environment"]?.stringValue ?? "")
        }
        return Response(status: 200, json: .object(["locks": .array(list)]))
    }

    static func releases(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let q = request.queryItems
        guard let project = q["project"], let environment = q["environment"] else {
            throw DravenError.invalidField(
                pointer: q["project"] == nil ? "project" : "environment", reason: "is required")
        }
        var limit = 50
        if let raw = q["limit"] {
            guard let n = Int(raw), (1...500).contains(n) else {
                throw DravenError.invalidField(pointer: "limit", reason: "must be 1 to 500")
            }
            limit = n
        }
        context.subject = "\(project)/\(environment)"
        let db = try context.db()
        let target = try Target.find(db, project: project, environment: environment)
        try Grants.require(db, principal, .read, project: project, environment: environment)
        let list = try Releases.list(db, environment: target.environmentID, limit: limit)
        return Response(
            status: 200,
            json: .object([
                "project": .string(project), "environment": .string(environment),
                "live": list.first.map { $0.liveUntil == nil ? $0.json : .null } ?? .null,
                "releases": .array(list.map(\.json)),
            ]))
    }

    static func metrics(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        try Grants.requireMetrics(db, principal)
        return .text(200, try Metrics.render(db), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    /// Caches read-grant answers per (project, environment) for one request.
    struct Readable {
        let db: Database
        let principal: Principal
        var cache: [String: Bool] = [:]
        mutating func allows(_ project: String, _ environment: String) throws -> Bool {
            let key = project + "/" + environment
            if let known = cache[key] { return known }
            let ok = try Grants.allows(
                db, person: principal.personID, action: .read, project: project, environment: environment)
            cache[key] = ok
            return ok
        }
    }
}
