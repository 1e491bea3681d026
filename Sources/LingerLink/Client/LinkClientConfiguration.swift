public import NIOCore
import NIOPosix

/// How a ``LinkClient`` connects, buffers and decides that a connection is dead.
public struct LinkClientConfiguration: Sendable {
    /// A server to connect to.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Servers tried in turn on every (re)connect.
    public var endpoints: [Endpoint]
    /// Stable across reconnects and restarts: the key of the server's dedupe state.
    public var clientID: String
    public var token: String
    /// TLS to the server; nil connects in plaintext.
    public var tls: LinkClientTLS?
    /// Unacknowledged messages the outbox holds before `send` waits (or fails).
    public var outboxMessages: Int
    /// Unacknowledged bytes (frames included) the outbox holds before `send` waits (or fails).
    public var outboxBytes: Int
    /// When the outbox is full: wait for acknowledgements (backpressure), or throw ``LinkError`` `.outboxFull`.
    public var waitWhenFull: Bool
    /// A connection that receives nothing (no ACK, no PING, no PONG) for this long is presumed dead and
    /// replaced. The server learns it in HELLO and PINGs more often while it makes the client wait.
    public var idleTimeout: Duration
    /// Send a PING after this long without receiving anything.
    public var pingInterval: Duration
    public var connectTimeout: Duration
    /// After GOAWAY, ERROR or close(): how long to wait for the server's EOF before closing anyway.
    public var closeDeadline: Duration
    public var backoff: ReconnectBackoff
    /// The largest frame this client accepts from the server.
    public var maximumFrameLength: UInt32
    /// Stop (``LinkError`` `.unreachable`) when no session has been up for this long; nil retries forever.
    public var giveUpAfter: Duration?
    /// Called after each failed attempt while no session is up (on the client's task, not an event loop):
    /// the CLI prints a warning from it.
    public var onConnectionTrouble: (@Sendable (ConnectionTrouble) -> Void)?
    /// The event loops to connect on (the process-wide singleton unless given).
    public var eventLoopGroup: any EventLoopGroup

    public init(
        endpoints: [Endpoint], clientID: String, token: String = "", tls: LinkClientTLS? = nil, outboxMessages: Int = 1_000_000,
        outboxBytes: Int = 256 << 20, waitWhenFull: Bool = true, idleTimeout: Duration = .seconds(30),
        pingInterval: Duration? = nil, connectTimeout: Duration = .seconds(5), closeDeadline: Duration = .seconds(5),
        backoff: ReconnectBackoff = ReconnectBackoff(), giveUpAfter: Duration? = nil,
        onConnectionTrouble: (@Sendable (ConnectionTrouble) -> Void)? = nil,
        maximumFrameLength: UInt32 = LinkLimits.defaultMaximumFrameLength, eventLoopGroup: (any EventLoopGroup)? = nil
    ) {
        self.giveUpAfter = giveUpAfter
        self.onConnectionTrouble = onConnectionTrouble
        self.endpoints = endpoints
        self.clientID = clientID
        self.token = token
        self.tls = tls
        self.outboxMessages = outboxMessages
        self.outboxBytes = outboxBytes
        self.waitWhenFull = waitWhenFull
        self.idleTimeout = idleTimeout
        self.pingInterval = pingInterval ?? idleTimeout / 3
        self.connectTimeout = connectTimeout
        self.closeDeadline = closeDeadline
        self.backoff = backoff
        self.maximumFrameLength = maximumFrameLength
        self.eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }
}

/// A failed attempt to reach the server while no session is up.
public struct ConnectionTrouble: Sendable, Equatable {
    /// Consecutive failed attempts so far (1 for the first).
    public var attempt: Int
    /// "cannot connect to HOST:PORT: connection refused", in words.
    public var reason: String
    /// When the next attempt comes.
    public var retryIn: Duration
    /// How long the link has been down.
    public var downFor: Duration
}
