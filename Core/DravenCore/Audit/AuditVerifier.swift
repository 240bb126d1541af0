/// One thing wrong with the audit trail, by kind (`draven audit verify`, `draven doctor`).
package struct AuditFinding: Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        /// A record's hash is not the digest of its fields and the previous hash: edited in place.
        case chainBroken = "chain-broken"
        /// Records the latest checkpoint covers are gone (the chain ends before its head, or the
        /// head record is missing).
        case truncated
        /// The record at the checkpoint's head has another hash, or the covered records are not
        /// the ones it counted: history was rewritten and the hashes recomputed.
        case rewritten
        /// A record after the checkpoint dated (more than `AuditVerifier.slack`) before it: it
        /// claims a place in history the checkpoint did not see.
        case backdated
        /// Records, but no checkpoint to check them against.
        case noCheckpoint = "no-checkpoint"
        /// The checkpoint log or key is unusable (a line that does not verify, bad permissions).
        case badCheckpoint = "bad-checkpoint"
    }

    package var kind: Kind
    package var recordID: Int64?
    package var message: String

    package var description: String { "\(kind.rawValue): \(message)" }
}

/// The chain check against the latest signed checkpoint (see `AuditCheckpoints`).
///
/// What it proves, for an attacker who can write the database but not the admin directory: every
/// record up to the checkpoint's head is the one that was signed, and none is missing; records
/// after it chain on from it. What it cannot: records appended after the latest checkpoint may
/// be forged (if correctly chained and dated after it) or dropped — detection is bounded by the
/// checkpoint interval.
package enum AuditVerifier {
    /// How far before the checkpoint an uncovered record may be dated (a request that read the
    /// clock before the checkpoint and committed after it).
    package static let slack: Int64 = 300

    package struct Report: Sendable {
        package var findings: [AuditFinding] = []
        /// Records in the chain (with `sinceCheckpoint`: the checkpoint's count plus those after it).
        package var records: Int64 = 0
        package var headID: Int64 = 0
        package var headHash = Audit.genesis
        package var checkpoint: AuditCheckpoint?
        /// Records after the checkpoint's head (not yet covered by a signature).
        package var uncovered: Int64 = 0
    }

    /// Checks the whole chain, then against the latest checkpoint. Empty when all is well.
    package static func verify(db: Database, checkpoints: CheckpointPaths) throws -> [AuditFinding] {
        try report(db: db, checkpoints: checkpoints).findings
    }

    /// The full check (`sinceCheckpoint` = false), or only from the checkpoint's head on (what a
    /// checkpoint writer needs before signing a new head: the earlier records are already covered).
    package static func report(
        db: Database, checkpoints: CheckpointPaths,
        sinceCheckpoint: Bool = false
    ) throws -> Report {
        var r = Report()
        let (cp, problems) = AuditCheckpoints.latest(checkpoints)
        r.checkpoint = cp
        r.findings += problems.map { AuditFinding(kind: .badCheckpoint, recordID: nil, message: $0) }
        let start = sinceCheckpoint ? (cp?.headID ?? 0) : 0
        var prev: String? = start == 0 ? Audit.genesis : nil
        var covered: Int64 = 0
        var hashAtHead: String?
        var broken = false
        var backdated = 0
        try Audit.walk(db, fromID: start) { link in
            if prev == nil && link.id == start { prev = link.prevHash }  // the covered head: its seal is still checked
            if !broken && (link.prevHash != prev || !link.sealed) {
                broken = true
                r.findings.append(
                    AuditFinding(
                        kind: .chainBroken, recordID: link.id,
                        message:
                            "audit trail broken at record \(link.id): it or a record before it was changed, removed or "
                            + "reordered"))
            }
            prev = link.hash
            r.records += 1
            r.headID = link.id
            r.headHash = link.hash
            guard let cp else { return }
            if link.id <= cp.headID {
                covered += 1
                if link.id == cp.headID { hashAtHead = link.hash }
            } else {
                r.uncovered += 1
                if link.at < cp.at - slack && backdated < 10 {
                    backdated += 1
                    r.findings.append(
                        AuditFinding(
                            kind: .backdated, recordID: link.id,
                            message:
                                "record \(link.id) is dated \(Clock.rfc3339(link.at)), before the checkpoint of "
                                + "\(Clock.rfc3339(cp.at)) that covers records up to \(cp.headID), "
                                + "yet it comes after them: appended later, not by draven"))
                }
            }
        }
        guard let cp else {
            if r.records > 0 && !sinceCheckpoint {
                r.findings.append(
                    AuditFinding(
                        kind: .noCheckpoint, recordID: nil,
                        message:
                            "no checkpoint: \(r.records) records and no signed checkpoint in \(checkpoints.log) to "
                            + "check "
                            + "them against (truncation or rewriting would go unnoticed); run `draven audit checkpoint`"
                    ))
            }
            return r
        }
        let walked = r.records
        if sinceCheckpoint { r.records += cp.count - covered }  // the covered ones were not walked
        guard cp.headID > 0 else { return r }
        let when = Clock.rfc3339(cp.at)
        if hashAtHead == nil {
            let detail =
                r.headID < cp.headID
                ? "the chain ends at record \(r.headID) (\(walked) records read) but the checkpoint of \(when) "
                    + "covers records up to \(cp.headID) (\(cp.count) records): records were deleted"
                : "record \(cp.headID), the head at the checkpoint of \(when), is missing: records were deleted"
            r.findings.append(AuditFinding(kind: .truncated, recordID: cp.headID, message: detail))
        } else if hashAtHead != cp.headHash {
            r.findings.append(
                AuditFinding(
                    kind: .rewritten, recordID: cp.headID,
                    message:
                        "record \(cp.headID) does not have the hash the checkpoint of \(when) signed: the records up "
                        + "to it "
                        + "were changed and the hashes recomputed"))
        } else if !sinceCheckpoint && covered != cp.count {
            let fewer = covered < cp.count
            r.findings.append(
                AuditFinding(
                    kind: fewer ? .truncated : .rewritten, recordID: cp.headID,
                    message:
                        "\(covered) records up to record \(cp.headID), but the checkpoint of \(when) counted "
                        + "\(cp.count): "
                        + "records were " + (fewer ? "deleted" : "inserted") + " before it"))
        }
        return r
    }
}
