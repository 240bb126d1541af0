internal import Glibc

/// Owns the `sweep_passes` table: one row that every `draven sweep` pass adds itself to (how many
/// passes, how long they took, when the latest ended), so `/metrics` can tell whether the sweep
/// service runs and how long its passes take. One small UPDATE per pass (every 5 s as a service).
package enum SweepPasses {
    /// Microseconds on the monotonic clock, for timing a pass.
    package static func micros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Records a pass that took `micros` µs and ended at `now`.
    package static func record(_ db: Database, micros: Int64, now: Int64) throws {
        try db.immediate { tx in
            try tx.db.run(
                """
                INSERT INTO sweep_passes (id, passes, micros, last_at, last_micros) VALUES (1, 1, ?1, ?2, ?1)
                ON CONFLICT DO UPDATE SET passes = passes + 1, micros = micros + excluded.micros,
                  last_at = max(last_at, excluded.last_at), last_micros = excluded.last_micros
                """, [.int(max(0, micros)), .int(now)])
        }
    }

    /// The row: passes, their total µs, when the latest ended and how long it took (nil before the first).
    package static func totals(_ db: Database) throws -> (
        passes: Int64, micros: Int64, lastAt: Int64, lastMicros: Int64
    )? {
        try db.first("SELECT passes, micros, last_at, last_micros FROM sweep_passes WHERE id = 1") {
            ($0.int(0), $0.int(1), $0.int(2), $0.int(3))
        }
    }
}
