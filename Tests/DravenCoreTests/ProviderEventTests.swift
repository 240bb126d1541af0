import Glibc
import Testing

@testable import DravenCore
@testable import DravenFunctions

/// The real example payloads in events/, found from this file's path (no resource bundle).
enum Fixtures {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/events/"
    }()

    static func json(_ name: String) throws -> JSON {
        try JSON.parse(bytes(name))
    }

    static func bytes(_ name: String) -> [UInt8] {
        let fd = open(root + name, O_RDONLY)
        precondition(fd >= 0, "missing fixture \(name)")
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += buffer[..<n]
        }
        return bytes
    }

    /// Every provider payload: "github/push.json", … (not the schemas).
    static func payloads() -> [String] {
        var names: [String] = []
        for provider in ["github", "gitlab", "bitbucket-cloud", "bitbucket-dc"] {
            guard let dir = opendir(root + provider) else { continue }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasSuffix(".json") { names.append(provider + "/" + name) }
            }
        }
        return names.sorted()
    }
}

@Suite struct ProviderEventTests {
    @Test(
        arguments: [
            // (provider, event header, fixture, run key, job id, state)
            (.github, "workflow_run", "github/workflow_run.completed.json", "289782451", nil, JobState.succeeded),
            (.github, "workflow_run", "github/workflow_run.requested.json", "289782451", nil, .running),
            (.github, "workflow_job", "github/workflow_job.queued.json", "2202229078", nil, .running),
            (.github, "workflow_job", "github/workflow_job.completed.failure.json", "2202229078", nil, nil),
            (.github, "deployment_status", "github/deployment_status.created.json", nil, nil, .succeeded),
            (.gitlab, "Pipeline Hook", "gitlab/pipeline_hook.json", "31", nil, .succeeded),
            (.gitlab, "Job Hook", "gitlab/job_hook.json", "2366", nil, nil),
            (
                .bitbucketCloud, "repo:commit_status_created", "bitbucket-cloud/repo_commit_status_created.json",
                "mybuildtool", nil, .running
            ),
            (
                .bitbucketCloud, "repo:commit_status_updated", "bitbucket-cloud/repo_commit_status_updated.json",
                "mybuildtool", nil, .succeeded
            ),
        ] as [(Provider, String, String, String?, Int64?, JobState?)])
    func realPayloadsMap(
        _ provider: Provider, _ name: String, _ file: String, _ runKey: String?, _ jobID: Int64?,
        _ state: JobState?
    ) throws {
        let event = provider.ci.parse(event: name, payload: try Fixtures.json(file))
        #expect(event.relevant)
        #expect(event.runKey == runKey)
        #expect(event.jobID == jobID)
        #expect(event.state == state)
    }

    @Test(
        arguments: [
            (.github, "ping", "github/ping.json"), (.github, "push", "github/push.json"),
            (.github, "check_suite", "github/check_suite.completed.json"),
            (.bitbucketDataCenter, "repo:refs_changed", "bitbucket-dc/repo_refs_changed.json"),
        ]
            as [(Provider, String, String)])
    func irrelevantEvents(_ provider: Provider, _ name: String, _ file: String) throws {
        #expect(!provider.ci.parse(event: name, payload: try Fixtures.json(file)).relevant)
    }

    @Test func onlyMappedEventsAreDecoded() {
        for (provider, name) in [
            (Provider.github, "workflow_run"), (.github, "workflow_job"),
            (.github, "deployment_status"), (.gitlab, "Pipeline Hook"), (.gitlab, "Job Hook"),
            (.gitlab, "Deployment Hook"), (.bitbucketCloud, "repo:commit_status_updated"),
            (.bitbucketCloud, "repo:commit_status_created"),
        ] {
            #expect(provider.ci.maps(event: name), "\(provider) \(name)")
        }
        for (provider, name) in [
            (Provider.github, "push"), (.github, "ping"), (.github, ""), (.gitlab, "Push Hook"),
            (.gitlab, "workflow_run"), (.bitbucketDataCenter, "repo:refs_changed"),
            (.bitbucketCloud, "repo:push"),
        ] {
            #expect(!provider.ci.maps(event: name), "\(provider) \(name)")
        }
    }

    typealias R = ProviderEvent.Reading

    /// `want` nil: a waiting state (not an end: reports running, says why).
    static func check(_ got: R, _ want: R?, _ what: String) {
        guard let want else { return #expect(got.why != nil && got.state == .running, "\(what)") }
        #expect(got == want, "\(what)")
    }

    /// The whole table of ProviderEvent's doc comment: every documented state of every provider.
    @Test func everyProviderStateMapsAsDocumented() {
        let github: [(String, String?, R?)] = [
            ("requested", nil, .running), ("queued", nil, .running), ("pending", nil, .running),
            ("in_progress", nil, .running), ("waiting", nil, nil),
            ("completed", "success", .ended(.succeeded)), ("completed", "neutral", .ended(.succeeded)),
            ("completed", "failure", .ended(.failed)), ("completed", "timed_out", .ended(.failed)),
            ("completed", "startup_failure", .ended(.failed)), ("completed", "stale", .ended(.failed)),
            ("completed", "cancelled", .ended(.cancelled)), ("completed", "skipped", .ended(.cancelled)),
            ("completed", "action_required", nil), ("completed", nil, .ended(.failed)), ("", nil, .recorded),
        ]
        for (status, conclusion, want) in github {
            let got = GitHub.run(status: status, conclusion: conclusion)
            Self.check(got, want, "\(status) \(conclusion ?? "-")")
        }
        let gitlab: [(String, R?)] = [
            ("created", .running), ("pending", .running), ("preparing", .running), ("running", .running),
            ("waiting_for_resource", nil), ("manual", nil), ("scheduled", nil), ("waiting_for_callback", nil),
            ("canceling", nil), ("success", .ended(.succeeded)), ("failed", .ended(.failed)),
            ("canceled", .ended(.cancelled)), ("skipped", .ended(.cancelled)), ("unknown", .recorded),
        ]
        for (status, want) in gitlab { Self.check(GitLab.pipeline(status: status), want, status) }
        let commitStatus: [(String, R)] = [
            ("INPROGRESS", .running), ("SUCCESSFUL", .ended(.succeeded)),
            ("FAILED", .ended(.failed)), ("STOPPED", .ended(.cancelled)),
            ("", .recorded),
        ]
        for (state, want) in commitStatus { Self.check(BitbucketCloud.commitStatus(state), want, state) }
        let pipelines: [(String, String?, String?, R?)] = [
            ("PENDING", nil, nil, .running), ("IN_PROGRESS", nil, nil, .running),
            ("IN_PROGRESS", "RUNNING", nil, .running),
            ("IN_PROGRESS", "PAUSED", nil, nil), ("IN_PROGRESS", "HALTED", nil, nil), ("PAUSED", nil, nil, nil),
            ("HALTED", nil, nil, nil), ("COMPLETED", nil, "SUCCESSFUL", .ended(.succeeded)),
            ("COMPLETED", nil, "STOPPED", .ended(.cancelled)), ("COMPLETED", nil, "FAILED", .ended(.failed)),
            ("COMPLETED", nil, "ERROR", .ended(.failed)), ("COMPLETED", nil, "EXPIRED", .ended(.failed)),
            ("", nil, nil, .recorded),
        ]
        for (state, stage, result, want) in pipelines {
            Self.check(
                BitbucketCloud.pipeline(state: state, stage: stage, result: result), want,
                "\(state) \(stage ?? "-") \(result ?? "-")")
        }
    }

    /// A waiting state is recorded with why, and reports `running` (the job keeps its lock).
    @Test func waitingStatesAreNotEnds() throws {
        var p = try Fixtures.json("github/workflow_run.completed.json").objectValue!
        var run = p["workflow_run"]!.objectValue!
        run["conclusion"] = "action_required"
        p["workflow_run"] = .object(run)
        let event = Provider.github.ci.parse(event: "workflow_run", payload: .object(p))
        #expect(event.state == .running && event.waiting != nil)
        #expect(event.detail["waiting"]?.stringValue == event.waiting)
        func pipeline(_ status: String) -> ProviderEvent {
            let payload: JSON = ["object_attributes": ["id": 1, "status": .string(status)]]
            return Provider.gitlab.ci.parse(event: "Pipeline Hook", payload: payload)
        }
        #expect(pipeline("manual").state == .running && pipeline("manual").waiting?.contains("manual") == true)
        #expect(pipeline("success").waiting == nil && pipeline("success").detail["waiting"] == nil)
    }

    /// A poll reads the provider's run through the same table as the webhook.
    @Test(
        arguments: [
            (.github, #"{"id": 9, "status": "completed", "conclusion": "action_required"}"#, JobState.running, true),
            (.github, #"{"id": 9, "status": "waiting", "conclusion": null}"#, .running, true),
            (.github, #"{"id": 9, "status": "completed", "conclusion": "startup_failure"}"#, .failed, false),
            (.gitlab, #"{"id": 5, "status": "manual"}"#, .running, true),
            (.gitlab, #"{"id": 5, "status": "scheduled"}"#, .running, true),
            (.gitlab, #"{"id": 5, "status": "canceling"}"#, .running, true),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "IN_PROGRESS", "stage": {"name": "PAUSED"}}}"#,
                .running,
                true
            ),
            (.bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "HALTED"}}"#, .running, true),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "COMPLETED", "result": {"name": "EXPIRED"}}}"#,
                .failed, false
            ),
            (
                .bitbucketCloud, #"{"uuid": "{u}", "state": {"name": "COMPLETED", "result": {"name": "STOPPED"}}}"#,
                .cancelled, false
            ),
        ] as [(Provider, String, JobState, Bool)])
    func pollsUseTheSameTable(_ provider: Provider, _ body: String, _ state: JobState, _ waits: Bool) throws {
        let event = try #require(RunControl.event(provider: provider, body: Array(body.utf8)))
        #expect(event.state == state && (event.waiting != nil) == waits)
    }

    @Test func jobMarkersInRunNames() {
        #expect(ProviderEvent.jobMarker("deploy shop to prod [draven-job-123]") == 123)
        #expect(ProviderEvent.jobMarker("draven-job-") == nil)
        #expect(ProviderEvent.jobMarker("nothing here") == nil)
    }

    @Test func bitbucketBuildNumbersFromPipelineURLs() {
        let payload: JSON = [
            "commit_status": [
                "state": "FAILED", "key": "build", "url": "https://bitbucket.org/a/b/pipelines/results/42",
            ]
        ]
        let event = Provider.bitbucketCloud.ci.parse(event: "repo:commit_status_updated", payload: payload)
        #expect(event.runKey == "#42" && event.state == .failed)
    }

    @Test func gitlabJobIDVariable() {
        let payload: JSON = [
            "object_attributes": ["id": 5, "status": "failed", "variables": [["key": "JOB_ID", "value": "17"]]]
        ]
        let event = Provider.gitlab.ci.parse(event: "Pipeline Hook", payload: payload)
        #expect(event.jobID == 17 && event.state == .failed && event.runKey == "5")
    }
}

@Suite struct HMACTests {
    /// RFC 4231 test case 2.
    @Test func rfc4231() {
        let key = SecretBytes(copying: Array("Jefe".utf8), label: "k")
        let mac = Sodium.hmacSHA256(key: key, message: Array("what do ya want for nothing?".utf8))
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Sodium.hexSignatureMatches("sha256=" + Hex.encode(mac), prefix: "sha256=", expected: mac))
        #expect(Sodium.hexSignatureMatches("sha256=" + Hex.encode(mac).uppercased(), prefix: "sha256=", expected: mac))
        #expect(!Sodium.hexSignatureMatches("sha1=" + Hex.encode(mac), prefix: "sha256=", expected: mac))
        #expect(!Sodium.hexSignatureMatches("sha256=" + Hex.encode(mac.dropLast()), prefix: "sha256=", expected: mac))
        #expect(!Sodium.hexSignatureMatches(nil, prefix: "sha256=", expected: mac))
    }
}
