/// Reconnect delays: exponential growth with a cap and "decorrelated jitter" on every attempt (each delay
/// is random between the base and three times the previous one), so a fleet of clients that lost the same
/// server does not come back in lockstep.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    private var previous: Duration
    /// Set by ``reset()``: the first delays after a connection that worked are short (a server restart is the
    /// common cause, and it is back within tens of milliseconds), still jittered so a fleet does not return
    /// at once. Each quick delay is random in `0...initial/4`, and they go on until they add up to five times
    /// `initial` (half a second by default, about 40 tries of a refused connect, which costs the server's
    /// kernel one RST each), then the backoff grows as usual. Three quick tries were too few: a server that
    /// took longer than them to start was found 100 to 900 ms late (a restart's p99 was 772 ms).
    private var quickBudget: Duration = .zero

    /// - Parameter initial: at least 1 ms is used: from 0 the delays never grew, and a sender retried a
    ///   refused connection 1,300 times a second.
    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10)) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(self.initial, maximum)
        self.previous = self.initial
    }

    /// The next delay, in `initial ... maximum`.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        if quickBudget > .zero {
            let delay = Duration.milliseconds(Int64.random(in: 0...Self.milliseconds(initial) / 4, using: &generator))
            quickBudget -= max(delay, .milliseconds(1))
            return delay
        }
        let low = Self.milliseconds(initial)
        let high = max(low, min(Self.milliseconds(maximum), Self.milliseconds(previous) * 3))
        let chosen = Int64.random(in: low...high, using: &generator)
        previous = .milliseconds(chosen)
        return previous
    }

    public mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    /// After a connection that worked: start small again, delays below `initial / 4` for about five times
    /// `initial` in all.
    public mutating func reset() {
        previous = initial
        quickBudget = initial * 5
    }

    private static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
