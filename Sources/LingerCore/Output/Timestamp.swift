/// UTC timestamps in ISO 8601 without Foundation, for `takenAt` fields.
public enum Timestamp {
    /// `seconds` since the Unix epoch as `2026-11-26T00:31:00.123Z` (millisecond precision).
    public static func iso8601(_ seconds: Double) -> String {
        let totalMillis = Int64((seconds * 1000).rounded())
        let millis = Int(totalMillis % 1000)
        let totalSeconds = totalMillis / 1000
        let days = Int(totalSeconds / 86400)
        let secondOfDay = Int(totalSeconds % 86400)
        // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }
}
