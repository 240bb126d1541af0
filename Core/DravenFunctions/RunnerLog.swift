package import DravenCore

/// `POST /hooks/runner/log` — one chunk of a running deploy's output, streamed by its runner
/// (served by `heartbeat`: see `Heartbeat`). Stored by `JobLogs`, read back by
/// `GET /api/v1/jobs/{id}/log` (`Status`).
///
/// Body: `{"job_id": N, "fencing_token": T, "seq": S, "data": "<base64>"}` (standard base64 with
/// padding; at most 64 KiB once decoded, at least one byte), signed with the runner HMAC
/// (`RunnerSignature`, as heartbeats and the final callback). Answers:
/// - 201 `{"job_id", "seq", "bytes", "cut"}` stored (`bytes`: the log's size now; `cut`: this chunk
///   reached the per-job cap, `logs.max_job_bytes`, and the log says so where it was cut);
/// - 200 `{…, "status": "duplicate"}` the same seq again with the same data: nothing changes;
/// - 202 `{…, "status": "dropped"}` received after the cap cut the log: counted, not stored;
/// - 401 bad signature or unknown job; 409 `stale-fencing-token` (the token does not hold the
///   lock), `conflict` (the job has ended; or the seq was used for other data, or is not the next);
///   413 data over 64 KiB decoded (or a body over 96 KiB); 400/415/422 for a malformed body.
/// A refused chunk changes nothing.
///
/// The runner masks its own secret before sending; draven masks it again here (its bytes, and its
/// base64 and percent-encoded forms: `Redactor.mask`), since it holds the secret it verified with.
/// A mask cannot see a secret split across two chunks: the runner cuts chunks at line ends.
enum RunnerLog {
    static let route = Route("POST", "/hooks/runner/log")
    /// base64 of 64 KiB is 87,384 bytes; the rest is room for the other fields.
    static let maxBodyBytes = 96 * 1024
    /// What a masked secret becomes in a log (as CI systems write it).
    static let mask = Array("***".utf8)

    static func respond(_ request: Request, _ context: Context) throws -> Response {
        let (timestamp, signature) = try RunnerSignature.headers(request, now: context.now)
        let body = try request.jsonBody()
        guard let object = body.objectValue else { throw DravenError.malformed("the body must be a JSON object") }
        let db = try context.db()
        // The job (and so its project's runner secret) is named in the body: read it, verify, then believe it.
        guard let jobID = object["job_id"]?.intValue, jobID > 0, let project = try Job.projectName(db, id: jobID)
        else {
            throw DravenError.badSignature(
                "no job \(object["job_id"].map { $0.serialized() } ?? "") to verify this log chunk for")
        }
        context.subject = "job/\(jobID)"
        let (_, secret) = try RunnerSignature.verified(
            request, timestamp: timestamp, signature: signature, project: project, db: db, paths: context.paths)
        // Verified. Now the fields.
        for key in object.keys where !["job_id", "fencing_token", "seq", "data"].contains(key) {
            throw DravenError.invalidField(
                pointer: "/" + key, reason: "is not a field of a log chunk (job_id, fencing_token, seq, data)")
        }
        guard let token = object["fencing_token"]?.intValue, token > 0 else {
            throw DravenError.invalidField(
                pointer: "/fencing_token", reason: "must be the positive integer the job was dispatched with")
        }
        guard let seq = object["seq"]?.intValue, seq > 0 else {
            throw DravenError.invalidField(pointer: "/seq", reason: "must be a positive integer (1, 2, 3 … per job)")
        }
        guard let text = object["data"]?.stringValue else {
            throw DravenError.invalidField(pointer: "/data", reason: "must be the chunk's bytes in base64")
        }
        // The decoded size is known from the text's length: refuse before decoding.
        guard text.utf8.count <= (JobLogs.chunkLimit + 2) / 3 * 4 else {
            throw DravenError.contentTooLarge(what: "a log chunk's data, decoded", limit: JobLogs.chunkLimit)
        }
        guard let raw = Base64.decode(text), !raw.isEmpty else {
            throw DravenError.invalidField(
                pointer: "/data", reason: "must be 1 to \(JobLogs.chunkLimit) bytes in standard base64 (with padding)")
        }
        guard raw.count <= JobLogs.chunkLimit else {
            throw DravenError.contentTooLarge(what: "a log chunk's data, decoded", limit: JobLogs.chunkLimit)
        }
        let chunk = JobLogs.Chunk(seq: seq, data: Redactor([secret]).mask(raw, with: mask))
        let limits = try JobLogs.Limits.load(db)

        let outcome = try db.immediate { tx -> JobLogs.Outcome in
            // Under the write lock: an ended job, or a token that no longer holds the lock, takes nothing.
            if let state = try Job.state(tx.db, id: jobID), state.isTerminal {
                throw DravenError.conflict(
                    "job \(jobID) is \(state.rawValue); its log is complete and takes no more chunks")
            }
            guard try Locks.holds(tx.db, job: jobID, token: token) else {
                // Counted for /metrics in the refusal's own transaction (this one rolls back).
                context.countRefusal = { tx in try RefusalCounts.countStaleToken(tx, job: jobID) }
                throw DravenError.staleFencingToken(job: jobID)
            }
            return try JobLogs.append(tx, job: jobID, chunk, limits: limits, now: context.now)
        }
        var answer: JSONObject = ["job_id": .int(jobID), "seq": .int(seq)]
        switch outcome {
        case .stored(let bytes, let cut):
            answer["bytes"] = .int(bytes)
            answer["cut"] = .bool(cut)
            return Response(status: 201, json: .object(answer))
        case .duplicate:
            answer["status"] = "duplicate"
            return Response(status: 200, json: .object(answer))
        case .dropped:
            answer["status"] = "dropped"
            answer["detail"] = .string("the log reached its cap and was cut; this chunk was counted, not stored")
            return Response(status: 202, json: .object(answer))
        }
    }
}
