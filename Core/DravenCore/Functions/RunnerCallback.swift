/// `POST /hooks/runner` — the pipeline's own report of how the deploy ended.
///
/// Body: `{"job_id", "fencing_token", "result": "succeeded"|"failed"|"cancelled", "log_url"?,
/// "artifact_urls"?: [..], "release_id"?}`. Headers: `X-Draven-Timestamp` (Unix seconds) and
/// `X-Draven-Signature: v1=<hex HMAC-SHA256(runner secret, timestamp + "." + body)>`, the
/// runner secret being the project's `runner_secret` (`openssl dgst -sha256 -hmac` can sign).
/// The timestamp must be within five minutes; a signature is accepted once (a replay is 401).
/// The fencing token must be the one the job holds the lock with (else 409).
enum RunnerCallback {
    static let window: Int64 = 300
    static let results: [String: JobState] = ["succeeded": .succeeded, "failed": .failed, "cancelled": .cancelled]

    static func respond(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        guard let timestamp = request.header("x-draven-timestamp").flatMap({ Int64($0) }) else {
            throw DravenError.badSignature("X-Draven-Timestamp is missing or not a number")
        }
        guard let signature = request.header("x-draven-signature") else { throw DravenError.badSignature("X-Draven-Signature is missing") }
        guard abs(context.now - timestamp) <= window else {
            throw DravenError.badSignature("X-Draven-Timestamp is more than five minutes away from now")
        }
        // The job (and so the project and its runner secret) is named in the body: read it, verify, then believe it.
        let body = try WebhookPayload.decode(request.body, request: request)
        guard let jobID = body["job_id"]?.intValue, let job = try Job.find(db, id: jobID) else {
            throw DravenError.badSignature("no job \(body["job_id"].map { $0.serialized() } ?? "") to verify this callback for")
        }
        context.subject = "job/\(job.id)"
        let integration = try HookIntegration.find(db, providers: ["github", "gitlab", "bitbucket", "bitbucket-dc"], project: job.project,
                                                   body: [], request: request)
        let secret = try integration.secret("runner_secret", db: db, paths: context.paths)
        let signed = Array("\(timestamp).".utf8) + request.body
        guard Sodium.hexSignatureMatches(signature, prefix: "v1=", expected: Sodium.hmacSHA256(key: secret, message: signed)) else {
            throw DravenError.badSignature("X-Draven-Signature does not match")
        }
        // Verified. Now the fields.
        guard let token = body["fencing_token"]?.intValue else { throw DravenError.invalidField(pointer: "/fencing_token", reason: "must be an integer") }
        guard let resultName = body["result"]?.stringValue, let result = results[resultName] else {
            throw DravenError.invalidField(pointer: "/result", reason: "must be succeeded, failed or cancelled")
        }
        let logURL = try optionalURL(body, "log_url")
        let releaseID = body["release_id"].flatMap { $0.stringValue ?? $0.intValue.map { String($0) } }
        let artifacts = body["artifact_urls"]?.arrayValue ?? []
        guard artifacts.allSatisfy({ $0.stringValue != nil }) else {
            throw DravenError.invalidField(pointer: "/artifact_urls", reason: "must be an array of URLs")
        }

        let state = try db.immediate { tx -> JobState in
            try tx.db.run("INSERT INTO deliveries (source, delivery_id, event, job_id, received_at) VALUES ('runner', ?1, 'result', ?2, ?3) ON CONFLICT DO NOTHING",
                          [.text(signature), .int(job.id), .int(context.now)])
            guard tx.db.changes == 1 else { throw DravenError.badSignature("this signed callback was already used (replay)") }
            let holder = try Locks.holder(tx.db, environment: job.environmentID)
            let current = try Job.require(tx.db, id: job.id)
            guard current.fencingToken == token, holder?.jobID == job.id, holder?.token == token else {
                throw DravenError.staleFencingToken(job: job.id)
            }
            try tx.db.run("UPDATE jobs SET log_url = coalesce(?2, log_url), release_id = coalesce(?3, release_id) WHERE id = ?1",
                          [.int(job.id), .text(logURL), .text(releaseID)])
            let detail: JSONObject = ["result": .string(resultName), "log_url": logURL.map(JSON.string) ?? .null,
                                      "artifact_urls": .array(artifacts), "release_id": releaseID.map(JSON.string) ?? .null]
            try StateMachine.report(tx, job: job.id, state: result, actor: "runner", detail: detail, now: context.now)
            return try Job.require(tx.db, id: job.id).state
        }
        return Response(status: 200, json: ["job_id": .int(job.id), "state": .string(state.rawValue)])
    }

    static func optionalURL(_ body: JSON, _ key: String) throws -> String? {
        guard let value = body[key], !value.isNull else { return nil }
        guard let s = value.stringValue, s.hasPrefix("https://") || s.hasPrefix("http://"), s.utf8.count <= 2000 else {
            throw DravenError.invalidField(pointer: "/" + key, reason: "must be an http(s) URL")
        }
        return s
    }
}
