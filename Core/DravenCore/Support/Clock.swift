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

    /// The Unix time of an RFC 3339 date-time (`2016-08-12T17:23:21+02:00`, `…Z`, fractions of a
    /// second dropped), as providers write commit times; nil for anything else. Howard Hinnant's
    /// days-from-civil.
    package static func seconds(rfc3339 text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] | 0x20 == UInt8(ascii: "t"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ from: Int, _ width: Int) -> Int64? {
            var v: Int64 = 0
            for k in from..<(from + width) {
                guard k < b.count, (0x30...0x39).contains(b[k]) else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)
            }
            return v
        }
        guard let y = number(0, 4), let m = number(5, 2), let d = number(8, 2), let hh = number(11, 2),
            let mm = number(14, 2), let ss = number(17, 2), (1...12).contains(m), (1...31).contains(d), hh < 24,
            mm < 60, ss < 61
        else { return nil }
        var k = 19
        if k < b.count, b[k] == UInt8(ascii: ".") {
            k += 1
            while k < b.count, (0x30...0x39).contains(b[k]) { k += 1 }
        }
        guard k < b.count else { return nil }
        var offset: Int64 = 0
        if b[k] | 0x20 == UInt8(ascii: "z") {
            guard k + 1 == b.count else { return nil }
        } else {
            guard b[k] == UInt8(ascii: "+") || b[k] == UInt8(ascii: "-"), k + 6 == b.count,
                b[k + 3] == UInt8(ascii: ":"), let oh = number(k + 1, 2), let om = number(k + 4, 2)
            else { return nil }
            offset = (oh * 3600 + om * 60) * (b[k] == UInt8(ascii: "-") ? -1 : 1)
        }
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86400 + hh * 3600 + mm * 60 + ss - offset
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
