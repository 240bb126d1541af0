import Glibc

@testable import DravenCore

/// A fresh, migrated store in its own temporary directory, with a configuration applied.
final class TestStore {
    let dir: String
    let paths: Paths
    let db: Database
    var now: Int64 = 1_800_000_000

    init(config: String = TestStore.config) throws {
        dir = Self.temporaryDirectory()
        paths = Paths(stateDir: dir)
        mkdir(paths.secretsDir, 0o750)
        db = try Database(path: paths.database)
        try Migrations.migrate(db)
        try Tokens.ensureKey(paths)
        try apply(config)
    }

    /// A copy of `other`'s whole state directory (store, secrets, keys) at its clock: cheaper than
    /// building the same store again. `other` must be idle with its WAL checkpointed (`checkpoint()`).
    init(copying other: TestStore) throws {
        dir = Self.temporaryDirectory()
        paths = Paths(stateDir: dir)
        let copy = "cp -a '\(other.dir)/.' '\(dir)/' && rm -f '\(paths.database)-wal' '\(paths.database)-shm'"
        guard system(copy) == 0 else { throw CopyFailed() }
        db = try Database(path: paths.database)
        now = other.now
    }

    struct CopyFailed: Error {}

    /// Folds the WAL into the database file, so the directory can be copied.
    func checkpoint() throws { try db.execute("PRAGMA wal_checkpoint(TRUNCATE)") }

    private static func temporaryDirectory() -> String {
        var template = Array("/tmp/draven-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        _ = system("rm -rf '\(dir)'")
    }

    @discardableResult
    func apply(_ text: String) throws -> ConfigApply.Summary {
        let config = try Config.validate(try JSON.parse(text), file: "test.json")
        return try db.immediate { tx in
            try ConfigApply.apply(tx, config, source: text, path: "test.json", appliedBy: "test", now: now)
        }
    }

    func count(_ table: String, _ whereClause: String = "1") throws -> Int64 {
        try db.scalar("SELECT count(*) FROM \(table) WHERE \(whereClause)") ?? 0
    }

    func personID(_ handle: String) throws -> Int64 {
        try db.scalar("SELECT id FROM people WHERE handle = ?1", [.text(handle)])!
    }

    func environmentID(_ project: String, _ env: String) throws -> Int64 {
        try db.scalar(
            "SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = ?1 AND e.name = ?2",
            [.text(project), .text(env)])!
    }

    /// Creates a job for `env` in `pending`, as trigger would before moving it on.
    func newJob(_ env: String = "demo", ref: GitRef = GitRef(kind: .branch, name: "develop")) throws -> Int64 {
        let eid = try environmentID("shop", env)
        let policy = try Policy.load(db, environmentID: eid)
        let pid = try db.scalar("SELECT id FROM projects WHERE name = 'shop'")!
        return try db.immediate { tx in
            try StateMachine.create(
                tx,
                .init(
                    projectID: pid, environmentID: eid, ref: ref, sha: nil, reason: "test",
                    requestedBy: try personID("carol"), policyVersion: policy.version),
                actor: "carol", subject: "shop/\(env)", now: now)
        }
    }

    func state(_ job: Int64) throws -> JobState {
        JobState(rawValue: try db.first("SELECT state FROM jobs WHERE id = ?1", [.int(job)]) { $0.text(0) }!)!
    }

    static let config = """
        {
          "people": {"alice": {"name": "Alice"}, "bob": {}, "carol": {}},
          "groups": {"leads": ["alice", "bob"], "developers": ["carol"]},
          "projects": {"shop": {
            "integration": {"provider": "github", "repo": "acme/shop", "method": "workflow_dispatch",
                            "pipelines": {"*": "deploy.yml"}},
            "environments": {
              "prod": {"refs": ["tag:v*"], "approvals": 2, "approver_groups": ["leads"], "lock": "queue"},
              "staging": {"refs": ["branch:main", "branch:release/*"], "lock": "reject"},
              "demo": {"refs": ["branch:develop"], "lock": "queue", "lease": "5m"}
            }
          }},
          "grants": [
            {"group": "developers", "project": "shop", "environments": ["demo", "staging"], "actions": ["deploy",
            "read"]},
            {"group": "leads", "project": "*", "actions": ["deploy", "approve", "read"]}
          ]
        }
        """
}
