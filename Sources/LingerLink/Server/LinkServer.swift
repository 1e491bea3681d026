public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// How a ``LinkServer`` listens, authenticates and stores.
public struct LinkServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (see ``LinkServer/listeningAddress()``).
    public var port: Int
    public var sink: any LinkSink
    /// Accepted tokens; empty means no authentication.
    public var tokens: [String]
    public var maximumConnections: Int
    /// A connection that receives nothing for this long is closed (a PING counts).
    public var idleTimeout: TimeAmount
    /// After ERROR or GOAWAY, how long the server waits for the client's EOF before closing itself.
    public var closeDeadline: TimeAmount
    /// On shutdown, how long clients get to close first (so TIME_WAIT lands on them).
    public var shutdownDeadline: TimeAmount
    public var maximumFrameLength: UInt32
    /// SO_LINGER {1, 0} on every connection: close with RST, no TIME_WAIT, unsent data lost. Never the
    /// default; for the lab's comparisons and for operators who know they need it.
    public var abortiveClose: Bool
    public var serverID: String

    public init(
        host: String = "127.0.0.1", port: Int = 7070, sink: any LinkSink, tokens: [String] = [],
        maximumConnections: Int = 1024, idleTimeout: TimeAmount = .seconds(30), closeDeadline: TimeAmount = .seconds(5),
        shutdownDeadline: TimeAmount = .seconds(10), maximumFrameLength: UInt32 = LinkLimits.defaultMaximumFrameLength,
        abortiveClose: Bool = false, serverID: String = "linger"
    ) {
        self.host = host
        self.port = port
        self.sink = sink
        self.tokens = tokens
        self.maximumConnections = maximumConnections
        self.idleTimeout = idleTimeout
        self.closeDeadline = closeDeadline
        self.shutdownDeadline = shutdownDeadline
        self.maximumFrameLength = maximumFrameLength
        self.abortiveClose = abortiveClose
        self.serverID = serverID
    }
}

/// The receiving end of the link: dedupes by (client id, sequence), acknowledges only what the sink holds,
/// and on graceful shutdown sends GOAWAY so clients close first.
///
/// Run it in a `ServiceGroup`; a graceful shutdown (SIGTERM/SIGINT there) or cancelling `run()` stops
/// accepting, asks every client to leave, and closes stragglers at the deadline.
public final class LinkServer: Service {
    public let configuration: LinkServerConfiguration
    private let logger: Logger
    private let metrics: LinkMetrics
    private let sessions: SessionTable
    private let address = Mutex<SocketAddress?>(nil)
    private let addressWaiters = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])

    public init(configuration: LinkServerConfiguration, logger: Logger, metrics: LinkMetrics = LinkMetrics(role: "server")) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.sessions = SessionTable(sink: configuration.sink)
    }

    /// The bound address, once listening (useful with port 0).
    public func listeningAddress() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            if let address = address.withLock({ $0 }) {
                continuation.resume(returning: address)
            } else {
                addressWaiters.withLock { $0.append(continuation) }
                if let address = address.withLock({ $0 }) { resumeWaiters(with: .success(address)) }
            }
        }
    }

    /// Open connections right now.
    public var connectionCount: Int { sessions.connectionCount }

    public func run() async throws {
        let settings = ServerConnectionHandler.Settings(
            tokens: configuration.tokens, idleTimeout: configuration.idleTimeout,
            closeDeadline: configuration.closeDeadline, maximumFrameLength: configuration.maximumFrameLength,
            serverID: configuration.serverID)
        let sessions = self.sessions, logger = self.logger, metrics = self.metrics
        let limit = configuration.maximumConnections
        let abortive = configuration.abortiveClose
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Reads grow to 1 MiB under load (fewer wake-ups, one ACK per read batch) but start small: NIO keeps
            // each channel's receive buffer for reuse, and a 64 KiB start cost 67 KiB per idle connection.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
        let channel: any Channel
        do {
            channel = try await bootstrap.childChannelInitializer { child in
                let admitted = sessions.admit(child, limit: limit)
                let lingerSet: EventLoopFuture<Void>
                if abortive, let provider = child as? any SocketOptionProvider {
                    lingerSet = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                } else {
                    lingerSet = child.eventLoop.makeSucceededVoidFuture()
                }
                return lingerSet.flatMapThrowing {
                    let handler = ServerConnectionHandler(sessions: sessions, settings: settings, logger: logger, metrics: metrics)
                    try child.pipeline.syncOperations.addHandler(handler)
                    if !admitted {
                        child.pipeline.fireUserInboundEventTriggered(RefuseConnection())
                    }
                }
            }.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            let failure = LinkError(.configuration, "cannot listen on \(configuration.host):\(configuration.port): \(error)")
            resumeWaiters(with: .failure(failure))
            throw failure
        }
        if let local = channel.localAddress {
            address.withLock { $0 = local }
            resumeWaiters(with: .success(local))
        }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])

        // Graceful shutdown and task cancellation both stop the listener and drain the connections.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
        await drain()
        try configuration.sink.close()
    }

    /// GOAWAY to every connection, then wait for the clients to close first, up to the deadline.
    private func drain() async {
        let open = sessions.beginShutdown()
        for child in open {
            child.pipeline.fireUserInboundEventTriggered(ServerShutdown())
        }
        let deadline = NIODeadline.now() + configuration.shutdownDeadline
        while sessions.connectionCount > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for child in sessions.beginShutdown() { try? await child.close() }
        logger.info("stopped", metadata: ["forcedClosed": "\(sessions.connectionCount)"])
    }

    private func resumeWaiters(with result: Result<SocketAddress, any Error>) {
        let waiters = addressWaiters.withLock { waiters in
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}

/// Fired into a connection's pipeline when the server is over its connection limit.
struct RefuseConnection {}
/// Fired into every connection's pipeline when the server shuts down gracefully.
struct ServerShutdown {}
