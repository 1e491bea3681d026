/// Reconnect delays: exponential growth with a cap and "decorrelated jitter" on every attempt (each delay
/// is random between the base and three times the previous one), so a fleet of clients that lost the same
/// server does not come back in lockstep.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    private var previous: Duration
    /// Set by ``reset()``: the first delay after a connection that worked is short (a server restart is the
    /// common cause, and it is back within milliseconds), still jittered so a fleet does not return at once.
    private var afterWorkingConnection = false

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.previous = initial
    }

    /// The next delay, in `initial ... maximum`.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        if afterWorkingConnection {
            afterWorkingConnection = false
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

    /// After a connection that worked: start small again, the first delay below `initial / 2`.
    public mutating func reset() {
        previous = initial
        afterWorkingConnection = true
    }

    private static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
