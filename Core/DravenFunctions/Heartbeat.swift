package import DravenCore

/// `POST /api/v1/jobs/{id}/heartbeat` — a running deploy's runner proving it is alive.
///
/// Body: `{"fencing_token": N, "progress"?: {"step"?, "percent"?, "message"?}}`, signed with
/// the runner HMAC (`RunnerSignature`). Extends the lease of the environment's lock by the
/// policy's `lease` from now and records the progress. Answers 200 `{"job_id", "state",
/// "lease_until"}`; 401 bad or stale signature; 409 when the job has ended (the runner should
/// stop) or the token no longer holds the lock (the lease ran out and the lock moved on);
/// 422 for a bad field. A refused heartbeat changes nothing.
///
/// Every running deploy sends one every few seconds, so this does only what it must: one
/// read of the job, the signature check, and one short transaction of two updates. A replayed
/// heartbeat (within the five-minute window) only extends a lease its job still holds, so
/// signatures are not remembered (that would add a row per heartbeat).
///
/// The same function takes the runner's log chunks (`POST /hooks/runner/log`, `RunnerLog`): the
/// other request a runner sends all through a run, with the same HMAC and fencing token, and
/// like a heartbeat nothing to remember about its signature (a repeated chunk is a duplicate by
/// its seq). Here it pays for what a runner's traffic needs and none of webhook-receive's
/// provider parsing (a smaller executable to start per request).
package enum Heartbeat: Function {
    package static let name = "heartbeat"
    package static let maxBodyBytes = 4096
    static let route = Route("POST", "/api/v1/jobs/{id}/heartbeat")

    /// A log chunk may be larger than a heartbeat: 96 KiB (checked, like 4 KiB for a heartbeat,
    /// against CONTENT_LENGTH before the body is read).
    package static func maxBodyBytes(path: String) -> Int {
        RunnerLog.route.match(path) != nil ? RunnerLog.maxBodyBytes : maxBodyBytes
    }

    package static func respond(to request: Request, context: Context) throws -> Response {
        if RunnerLog.route.match(request.path) != nil {
            guard request.method == "POST" else { throw DravenError.methodNotAllowed(allowed: ["POST"]) }
            return try RunnerLog.respond(request, context)
        }
        guard let params = route.match(request.path) else {
            throw DravenError.notFound(what: "no route for \(request.method) \(request.path)")
        }
        guard request.method == "POST" else { throw DravenError.methodNotAllowed(allowed: ["POST"]) }
        let id = try params.id("id")
        context.subject = "job/\(id)"
        let (timestamp, signature) = try RunnerSignature.headers(request, now: context.now)
        let db = try context.db()
        guard let project = try Job.projectName(db, id: id) else {
            throw DravenError.badSignature("no job \(id) to verify this heartbeat for")
        }
        try RunnerSignature.verify(
            request, timestamp: timestamp, signature: signature, project: project, db: db, paths: context.paths)
        let beat = try HeartbeatBody(try request.jsonBody())

        let (state, until) = try db.immediate { tx -> (String, Int64) in
            guard let until = try Locks.extend(tx, job: id, token: beat.fencingToken, now: context.now) else {
                let state = try Job.state(tx.db, id: id)
                if let state, !state.holdsLock {
                    throw DravenError.conflict(
                        "job \(id) is \(state.rawValue); it holds no lock and takes no heartbeats (stop the deploy)")
                }
                if let lapsed = try Locks.leaseUntil(tx.db, job: id, token: beat.fencingToken) {
                    throw DravenError.conflict(
                        "the lease of job \(id) ran out at \(Clock.rfc3339(lapsed)); it is being timed out (stop the "
                            + "deploy)"
                    )
                }
                // Counted for /metrics in the refusal's own transaction (this one rolls back).
                context.countRefusal = { tx in try RefusalCounts.countStaleToken(tx, job: id) }
                throw DravenError.staleFencingToken(job: id)
            }
            let state = try Job.recordHeartbeat(tx, job: id, progress: beat.progress, now: context.now)
            return (state ?? "", until)
        }
        return Response(
            status: 200,
            json: ["job_id": .int(id), "state": .string(state), "lease_until": .string(Clock.rfc3339(until))])
    }
}

/// The fields of a heartbeat.
struct HeartbeatBody {
    var fencingToken: Int64
    /// The progress as stored (JSON text), or nil when the heartbeat carries none.
    var progress: String?

    /// - Throws: `.malformed` unless an object; `.invalidField` naming the bad field.
    init(_ body: JSON) throws {
        guard let object = body.objectValue else { throw DravenError.malformed("the body must be a JSON object") }
        for key in object.keys where key != "fencing_token" && key != "progress" {
            throw DravenError.invalidField(
                pointer: "/" + key, reason: "is not a field of a heartbeat (fencing_token, progress)")
        }
        guard let token = object["fencing_token"]?.intValue, token > 0 else {
            throw DravenError.invalidField(
                pointer: "/fencing_token", reason: "must be the positive integer the job was dispatched with")
        }
        fencingToken = token
        guard let value = object["progress"], !value.isNull else {
            progress = nil
            return
        }
        guard let p = value.objectValue else {
            throw DravenError.invalidField(pointer: "/progress", reason: "must be an object")
        }
        var out: JSONObject = [:]
        for (key, v) in p.entries {
            switch key {
            case "step", "message":
                guard let s = v.stringValue, s.utf8.count <= (key == "step" ? 200 : 1000) else {
                    throw DravenError.invalidField(
                        pointer: "/progress/" + key,
                        reason: "must be a string of at most \(key == "step" ? 200 : 1000) bytes")
                }
                out[key] = .string(s)
            case "percent":
                guard let n = v.intValue, (0...100).contains(n) else {
                    throw DravenError.invalidField(
                        pointer: "/progress/percent", reason: "must be an integer from 0 to 100")
                }
                out[key] = .int(n)
            default:
                throw DravenError.invalidField(
                    pointer: "/progress/" + key, reason: "is not a field of progress (step, percent, message)")
            }
        }
        progress = JSON.object(out).serialized()
    }
}
