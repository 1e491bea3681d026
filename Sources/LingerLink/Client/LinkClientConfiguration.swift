public import NIOCore

/// How a ``LinkClient`` connects, buffers and decides that a connection is dead.
public struct LinkClientConfiguration: Sendable {
    /// Servers tried in turn on every (re)connect.
    public var endpoints: [(host: String, port: Int)]
    /// Stable across reconnects and restarts: the key of the server's dedupe state.
    public var clientID: String
    public var token: String
    /// Unacknowledged messages the outbox holds before `send` waits (or fails).
    public var outboxMessages: Int
    /// Unacknowledged bytes (frames included) the outbox holds before `send` waits (or fails).
    public var outboxBytes: Int
    /// When the outbox is full: wait for acknowledgements (backpressure), or throw ``LinkError`` `.outboxFull`.
    public var waitWhenFull: Bool
    /// A connection that receives nothing (no ACK, no PONG) for this long is presumed dead and replaced.
    public var idleTimeout: TimeAmount
    /// Send a PING after this long without receiving anything.
    public var pingInterval: TimeAmount
    public var connectTimeout: TimeAmount
    /// After GOAWAY, ERROR or close(): how long to wait for the server's EOF before closing anyway.
    public var closeDeadline: TimeAmount
    public var backoff: ReconnectBackoff

    public init(
        endpoints: [(host: String, port: Int)], clientID: String, token: String = "", outboxMessages: Int = 1_000_000,
        outboxBytes: Int = 256 << 20, waitWhenFull: Bool = true, idleTimeout: TimeAmount = .seconds(30),
        pingInterval: TimeAmount? = nil, connectTimeout: TimeAmount = .seconds(5), closeDeadline: TimeAmount = .seconds(5),
        backoff: ReconnectBackoff = ReconnectBackoff()
    ) {
        self.endpoints = endpoints
        self.clientID = clientID
        self.token = token
        self.outboxMessages = outboxMessages
        self.outboxBytes = outboxBytes
        self.waitWhenFull = waitWhenFull
        self.idleTimeout = idleTimeout
        self.pingInterval = pingInterval ?? .nanoseconds(idleTimeout.nanoseconds / 3)
        self.connectTimeout = connectTimeout
        self.closeDeadline = closeDeadline
        self.backoff = backoff
    }
}
