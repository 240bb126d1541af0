package import DravenCore

/// Read-only views: `GET /api/v1/jobs/{id}` (the job and its events), `GET /api/v1/jobs/{id}/log` (its
/// archived log), `GET /api/v1/jobs`
/// (recent jobs, `?project=&environment=&state=&limit=`), `GET /api/v1/locks`,
/// `GET /api/v1/releases?project=&environment=&limit=` (release history, newest first),
/// `GET /api/v1/dora?project=&environment=&window=30d` (DORA figures, `dora`), `GET /metrics`
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
        (Route("GET", "/api/v1/dora"), dora),
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

    /// `GET /api/v1/dora?project=P&environment=E[&window=30d]`: the four DORA metrics and the rework
    /// rate of one environment over the window ending now (`window`: a whole number of hours `h`, days
    /// `d` or weeks `w`, from 1h to 365d; default 30d), with a `read` grant on it. The answer:
    ///
    /// ```
    /// {"project": "shop", "environment": "prod", "window": "30d", "from": RFC 3339, "until": RFC 3339,
    ///  "deployment_frequency": {"deployments": 12, "per_day": 0.4},
    ///  "lead_time_for_changes": {"count": 10, "median_seconds": 5400, "p90_seconds": 86400},
    ///  "change_failure_rate": {"changes": 14, "failed": 2, "rate": 0.142857},
    ///  "time_to_restore": {"count": 2, "median_seconds": 1800, "p90_seconds": 3000},
    ///  "rework_rate": {"releases": 14, "rework": 2, "rate": 0.142857}}
    /// ```
    ///
    /// Deployments: deploys that went live. Lead time: commit time (from the provider's push, where it
    /// gave one: `count` says how many were known) to live. Changes: dispatched deploys that succeeded,
    /// failed or timed out; failed: those that failed or timed out or were rolled back or diagnosed, and
    /// rollbacks of no failed deploy. Time to restore: from a failed change to the release that ended it.
    /// Rework: those releases (rollbacks, fixes forward), of all releases. A median or rate with nothing
    /// to measure is `null`. 422 for a missing or unknown parameter value, 404 for an unknown environment.
    static func dora(_ request: Request, _ params: [String: String], _ context: Context) throws -> Response {
        let principal = try Authenticator.authenticate(request, context)
        let q = request.queryItems
        guard let project = q["project"], let environment = q["environment"] else {
            throw DravenError.invalidField(
                pointer: q["project"] == nil ? "project" : "environment", reason: "is required")
        }
        let window = q["window"] ?? "30d"
        guard let seconds = windowSeconds(window) else {
            throw DravenError.invalidField(
                pointer: "window", reason: "must be a whole number of hours, days or weeks (24h, 30d, 12w), 1h to 365d")
        }
        context.subject = "\(project)/\(environment)"
        let db = try context.db()
        let target = try Target.find(db, project: project, environment: environment)
        try Grants.require(db, principal, .read, project: project, environment: environment)
        let until = context.now
        let w = try JobMetrics.window(db, environment: target.environmentID, since: until - seconds, until: until)
        func ratio(_ n: Int64, _ of: Int64) -> JSON { of == 0 ? .null : .double(rounded(Double(n) / Double(of))) }
        func spread(_ sorted: [Int64]) -> JSONObject {
            [
                "count": .int(Int64(sorted.count)), "median_seconds": quantile(sorted, 0.5),
                "p90_seconds": quantile(sorted, 0.9),
            ]
        }
        return Response(
            status: 200,
            json: .object([
                "project": .string(project), "environment": .string(environment), "window": .string(window),
                "from": .string(Clock.rfc3339(until - seconds)), "until": .string(Clock.rfc3339(until)),
                "deployment_frequency": .object([
                    "deployments": .int(w.deployments),
                    "per_day": .double(rounded(Double(w.deployments) * 86400 / Double(seconds))),
                ]),
                "lead_time_for_changes": .object(spread(w.leadTimes)),
                "change_failure_rate": .object([
                    "changes": .int(w.changes), "failed": .int(w.failedChanges),
                    "rate": ratio(w.failedChanges, w.changes),
                ]),
                "time_to_restore": .object(spread(w.restores)),
                "rework_rate": .object([
                    "releases": .int(w.releases), "rework": .int(Int64(w.restores.count)),
                    "rate": ratio(Int64(w.restores.count), w.releases),
                ]),
            ]))
    }

    /// `24h`, `30d`, `12w` in seconds: 1 hour to 365 days; nil for anything else.
    static func windowSeconds(_ text: String) -> Int64? {
        guard let unit = text.last, let n = Int64(text.dropLast()), text.dropLast().allSatisfy(\.isASCII),
            text.first != "+", n > 0
        else { return nil }
        let scale: Int64? =
            switch unit {
            case "h": 3600
            case "d": 86400
            case "w": 604_800
            default: nil
            }
        guard let scale, n <= 365 * 86400 / scale else { return nil }
        return n * scale
    }

    /// The nearest-rank quantile `q` of ascending `sorted`, or null when empty.
    static func quantile(_ sorted: [Int64], _ q: Double) -> JSON {
        guard !sorted.isEmpty else { return .null }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return .int(sorted[max(0, min(sorted.count - 1, rank - 1))])
    }

    static func rounded(_ x: Double) -> Double { (x * 1_000_000).rounded() / 1_000_000 }

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
