/// Outbound calls waiting to be made. A transaction that decides a call is due writes a row
/// here; `draven-deliver` (run after the response is sent) and `draven sweep` make the call.
/// Payloads name secrets, never copy them.
package enum Outbox {
    /// `poll` asks a run's state, `cancel` asks the provider to cancel a run (`RunControl`).
    package enum Kind: String, Sendable { case dispatch, notify, poll, cancel }

    @discardableResult
    package static func enqueue(_ tx: Transaction, kind: Kind, job: Int64?, payload: JSONObject, now: Int64) throws -> Int64 {
        try tx.db.run("INSERT INTO outbox (kind, job_id, payload, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                      [.text(kind.rawValue), .int(job), .text(JSON.object(payload).serialized()), .int(now)])
        let id = tx.db.lastInsertRowID
        tx.enqueued(id)
        return id
    }
}
