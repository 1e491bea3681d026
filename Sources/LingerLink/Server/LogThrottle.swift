import Synchronization

/// Says when a repeated event is worth a log line: the first time for each reason, then at most once per
/// `interval`, with how many happened since. A thousand senders with a wrong CA get one line every 30 s,
/// not a thousand.
final class LogThrottle: Sendable {
    private let interval: Duration
    private let state = Mutex<[String: (logged: ContinuousClock.Instant, since: Int)]>([:])

    init(every interval: Duration) { self.interval = interval }

    /// For one occurrence of `reason`: the number of occurrences to report (this one included) when a line
    /// is due now, or nil when it is not.
    func shouldLog(_ reason: String, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { seen in
            guard let last = seen[reason] else {
                seen[reason] = (now, 0)
                return 1
            }
            guard now - last.logged >= interval else {
                seen[reason]!.since += 1
                return nil
            }
            seen[reason] = (now, 0)
            return last.since + 1
        }
    }
}
