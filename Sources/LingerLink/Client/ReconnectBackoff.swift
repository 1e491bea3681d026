/// Reconnect delays: exponential growth with a cap and "decorrelated jitter" on every attempt (each delay
/// is random between the base and three times the previous one), so a fleet of clients that lost the same
/// server does not come back in lockstep.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    private var previous: Duration
    /// Set by ``reset()``: the first delays after a connection that worked are short (a server restart is the
    /// common cause, and it is back within tens of milliseconds), still jittered so a fleet does not return
    /// at once. Three quick tries, then the backoff grows as usual.
    private var quickRetries = 0

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.previous = initial
    }

    /// The next delay, in `initial ... maximum`.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        if quickRetries > 0 {
            quickRetries -= 1
            return .milliseconds(Int64.random(in: 0...Self.milliseconds(initial) / 2, using: &generator))
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

    /// After a connection that worked: start small again, the first three delays below `initial / 2`.
    public mutating func reset() {
        previous = initial
        quickRetries = 3
    }

    private static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
