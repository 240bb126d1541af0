internal import Glibc

/// Wall-clock time in whole seconds since the Unix epoch, and its RFC 3339 form.
package enum Clock {
    /// Tests and tools may pin the clock with `DRAVEN_NOW` (seconds); never set it in production.
    package static func now() -> Int64 {
        if let pinned = getenv("DRAVEN_NOW").flatMap({ Int64(String(cString: $0)) }) { return pinned }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    /// `Tue, 24 Nov 2026 02:31:21 +0000` (RFC 5322 Date header).
    package static func rfc2822(_ seconds: Int64) -> String {
        let iso = rfc3339(seconds)  // yyyy-mm-ddThh:mm:ssZ
        let parts = iso.split(separator: "T")
        let ymd = parts[0].split(separator: "-").map { Int($0)! }
        let days = (seconds >= 0 ? seconds : seconds - 86399) / 86400
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][Int(((days % 7) + 7) % 7)]
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][ymd[1] - 1]
        return "\(weekday), \(ymd[2] < 10 ? "0" : "")\(ymd[2]) \(month) \(ymd[0]) \(parts[1].dropLast()) +0000"
    }

    /// `2026-11-24T02:31:21Z` for a Unix time in seconds (UTC). Howard Hinnant's civil-from-days.
    package static func rfc3339(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secs = seconds - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        // Written digit by digit into 20 bytes (the console shows many times a page).
        var out = [UInt8](repeating: 0, count: 20)
        func put(_ v: Int64, at: Int, width: Int) {
            var v = v
            for k in stride(from: at + width - 1, through: at, by: -1) {
                out[k] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(year, at: 0, width: 4)
        put(month, at: 5, width: 2)
        put(day, at: 8, width: 2)
        put(secs / 3600, at: 11, width: 2)
        put(secs % 3600 / 60, at: 14, width: 2)
        put(secs % 60, at: 17, width: 2)
        for (k, c) in [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "Z")] as [(Int, Unicode.Scalar)] {
            out[k] = UInt8(c.value)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
