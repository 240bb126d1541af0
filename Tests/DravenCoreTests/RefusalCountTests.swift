import Testing

@testable import DravenCore

@Suite struct RefusalCountTests {
    @Test func cappingCutsAtACharacterBoundaryAndSaysSo() {
        #expect("short".capped(256) == ("short", false))
        let (text, cut) = String(repeating: "é", count: 200).capped(256)  // 400 bytes
        #expect(cut && text.utf8.count <= 256 && text.hasSuffix("…"))
        #expect(text.dropLast().allSatisfy { $0 == "é" })
    }

    @Test func refusalsOfOneClientAreCountedInOneRowPerHour() throws {
        let store = try TestStore()
        let problem = Problem(.unauthenticated)
        let long = "/api/v1/jobs/" + String(repeating: "a", count: 7000)
        for i in 0..<50 {
            try store.db.immediate { tx in
                try RefusalCounts.record(
                    tx, at: 7200 + Int64(i), client: "192.0.2.1", function: "status",
                    problem: problem, path: long)
            }
        }
        try store.db.immediate { tx in
            try RefusalCounts.record(
                tx, at: 10800, client: "192.0.2.1", function: "status", problem: problem,
                path: "/x")
        }
        let rows = try RefusalCounts.list(store.db)
        #expect(rows.count == 2)
        #expect(rows.map { $0["count"]?.intValue } == [1, 50])
        #expect(rows[1]["problem"]?.stringValue == "unauthenticated")
        #expect((rows[1]["last_path"]?.stringValue?.utf8.count ?? 0) <= RefusalCounts.fieldLimit)
        #expect(try store.db.scalar("SELECT count(*) FROM audit WHERE outcome = 'refused'") == 0)
        // A sweep pass a month on forgets the older hour, not the newer one.
        #expect(try RefusalCounts.prune(store.db, now: 7201 + RefusalCounts.retention) == 1)
        #expect(try RefusalCounts.list(store.db).map { $0["count"]?.intValue } == [1])
        #expect(try RefusalCounts.prune(store.db, now: 7201 + RefusalCounts.retention) == 0)
    }
}
