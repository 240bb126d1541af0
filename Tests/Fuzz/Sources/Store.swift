import CSQLite

@testable import DravenCore

/// `store`: the C shims (Core/CSQLite/shim.h, built with -fsanitize=address,undefined in the fuzz
/// build) and the Statement binding every table goes through. Property: text and blobs bound to a
/// statement read back unchanged. Input: 4 bytes of busy-handler retry count, then the value.
enum FuzzStore {
    static let db: Database = {
        Database.configureSingleThreaded()
        guard let db = try? Database(path: ":memory:") else { fatalError("cannot open an in-memory database") }
        return db
    }()

    static func run(_ input: [UInt8]) {
        guard input.count >= 4 else { return }
        let count = Int32(bitPattern: input[0..<4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) & Int32.max
        // A zero timeout never sleeps: the arithmetic runs (every retry count SQLite can pass), no time passes.
        check(csqlite_busy_sleep(nil, count) == 0, "the busy handler slept past a zero timeout")
        let value = Array(input[4...])
        let text = String(decoding: value, as: UTF8.self)
        let read = try? db.first("SELECT ?1, ?2, length(CAST(?1 AS BLOB))", [.text(text), .blob(value)]) {
            ($0.text(0), $0.blob(1), $0.int(2))
        }
        check(read?.0 == text, "text bound to a statement read back as \(read.map { $0.0.debugDescription } ?? "nil")")
        check(read?.1 == value, "a blob bound to a statement read back changed")
        check(
            read?.2 == Int64(text.utf8.count),
            "SQLite stored \(read?.2 ?? -1) of the text's \(text.utf8.count) bytes")
    }
}
