/// Reconnect delays: exponential growth with a cap and "equal jitter" on every attempt (attempt n waits a
/// random time between half and all of `initial × 2^n`, capped at `maximum`), so a fleet of clients that lost
/// the same server does not come back in lockstep, and no cause makes a storm.
///
/// The floor doubles whatever the dice say: from 100 ms, retries come at the earliest 50, 150, 350 and
/// 750 ms after the loss, so at most four attempts fall in the first second. Linger 0.2 started over after
/// every session with a burst of quick retries (about 40 in half a second) and let the decorrelated jitter
/// fall back to the initial delay, which a server that accepts and then closes at once turned into a storm.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    /// Attempts since the last connection that worked.
    private var attempt = 0

    /// - Parameter initial: at least 1 ms is used: from 0 the delays never grew, and a sender retried a
    ///   refused connection 1,300 times a second.
    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10)) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(self.initial, maximum)
    }

    /// The next delay, in `initial / 2 ... maximum`.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let first = Self.milliseconds(initial), cap = Self.milliseconds(maximum)
        // initial × 2^attempt, without overflow once it passes the cap.
        var ceiling = first
        for _ in 0..<min(attempt, 62) where ceiling < cap { ceiling = ceiling.multipliedReportingOverflow(by: 2).partialValue }
        ceiling = min(max(ceiling, 1), cap)
        attempt += 1
        return .milliseconds(Int64.random(in: max(1, ceiling / 2)...ceiling, using: &generator))
    }

    public mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    /// After a connection that worked: start from the initial delay again.
    public mutating func reset() {
        attempt = 0
    }

    private static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds.multipliedReportingOverflow(by: 1000).overflow ? .max : seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
