package import DravenCore

/// `POST /hooks/runner` — the pipeline's own report of how the deploy ended.
///
/// Body: `{"job_id", "fencing_token", "result": "succeeded"|"failed"|"cancelled", "log_url"?,
/// "artifact_urls"?: [..], "release_id"?}`. Headers: `X-Draven-Timestamp` (Unix seconds) and
/// `X-Draven-Signature: v1=<hex HMAC-SHA256(runner secret, timestamp + "." + body)>`, the
/// runner secret being the project's `runner_secret` (`openssl dgst -sha256 -hmac` can sign).
/// The timestamp must be within five minutes; a signature is accepted once (a replay is 401),
/// remembered by its timestamp and decoded bytes (`SignedRequest.replayKey`): re-sent in upper
/// case or with its timestamp spelled differently it is still a replay.
/// The fencing token must be the one the job holds the lock with (else 409).
enum RunnerCallback {
    static let results: [String: JobState] = ["succeeded": .succeeded, "failed": .failed, "cancelled": .cancelled]

    static func respond(_ request: Request, _ context: Context) throws -> Response {
        let db = try context.db()
        let (timestamp, signature) = try RunnerSignature.headers(request, now: context.now)
        // The job (and so the project and its runner secret) is named in the body: read it, verify, then believe it.
        // draven's own contract: a repeated key is refused (400), as in every API body.
        let body = try WebhookPayload.decode(request.body, request: request, duplicateKeys: .refuse)
        guard let jobID = body["job_id"]?.intValue, let job = try Job.find(db, id: jobID) else {
            throw DravenError.badSignature(
                "no job \(body["job_id"].map { $0.serialized() } ?? "") to verify this callback for")
        }
        context.subject = "job/\(job.id)"
        let replayKey = try RunnerSignature.verify(
            request, timestamp: timestamp, signature: signature,
            project: job.project, db: db, paths: context.paths)
        // Verified. Now the fields.
        guard let token = body["fencing_token"]?.intValue else {
            throw DravenError.invalidField(pointer: "/fencing_token", reason: "must be an integer")
        }
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
            let record = Deliveries.Record(source: "runner", key: replayKey, event: "result", jobID: job.id)
            guard try Deliveries.insertOnce(tx, record, now: context.now) != nil else {
                throw DravenError.badSignature("this signed callback was already used (replay)")
            }
            let holder = try Locks.holder(tx.db, environment: job.environmentID)
            let current = try Job.require(tx.db, id: job.id)
            guard current.fencingToken == token, holder?.jobID == job.id, holder?.token == token else {
                // Counted for /metrics in the refusal's own transaction (this one rolls back).
                context.countRefusal = { tx in try RefusalCounts.countStaleToken(tx, job: job.id) }
                throw DravenError.staleFencingToken(job: job.id)
            }
            try Job.recordResult(tx, job: job.id, logURL: logURL, releaseID: releaseID)
            let detail: JSONObject = [
                "result": .string(resultName), "log_url": logURL.map(JSON.string) ?? .null,
                "artifact_urls": .array(artifacts), "release_id": releaseID.map(JSON.string) ?? .null,
            ]
            try StateMachine.report(tx, job: job.id, state: result, actor: "runner", detail: detail, now: context.now)
            // A diagnostic job's log belongs with the deploy it looked at.
            if job.kind.logsToParent, let parent = job.parentJobID, let logURL {
                try StateMachine.note(
                    tx, job: parent, event: "diagnostic", actor: "runner",
                    detail: [
                        "diagnostic_job_id": .int(job.id), "log_url": .string(logURL), "result": .string(resultName),
                    ],
                    now: context.now)
            }
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
