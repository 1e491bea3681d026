public import Logging
public import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
import NIOSSL
public import ServiceLifecycle
import Synchronization

/// How a ``LinkServer`` listens, authenticates and stores.
public struct LinkServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (see ``LinkServer/listeningAddress()``).
    public var port: Int
    public var sink: any LinkSink
    /// Accepted tokens and the client ids each may use; empty means no token is needed.
    public var tokens: [LinkToken]
    /// TLS for every connection (plaintext clients are refused with a reason); nil serves plaintext.
    public var tls: LinkServerTLS?
    public var maximumConnections: Int
    /// A connection that receives nothing for this long gets GOAWAY (a PING counts; time spent waiting
    /// for the sink does not).
    public var idleTimeout: Duration
    /// After ERROR or GOAWAY, how long the server waits for the client's EOF before closing itself.
    public var closeDeadline: Duration
    /// On shutdown, how long clients get to close first (so TIME_WAIT lands on them).
    public var shutdownDeadline: Duration
    public var maximumFrameLength: UInt32
    /// Bytes a connection may hold received while its previous batch is being committed; past this the
    /// server stops reading from it until the sink catches up.
    public var pendingLimit: Int
    /// Bytes all connections together may hold received and not yet stored; past this every connection
    /// stops reading until commits complete. Bounds the server's memory when the sink lags behind many
    /// senders (each connection can still overshoot by one read loop, about 1 MiB).
    public var pendingBudget: Int
    /// SO_LINGER {1, 0} on every connection: close with RST, no TIME_WAIT, unsent data lost. Never the
    /// default; for the lab's comparisons and for operators who know they need it.
    public var abortiveClose: Bool
    public var serverID: String
    /// The event loops to serve on (the process-wide singleton unless given).
    public var eventLoopGroup: any EventLoopGroup

    public init(
        host: String = "127.0.0.1", port: Int = 7070, sink: any LinkSink, tokens: [LinkToken] = [], tls: LinkServerTLS? = nil,
        maximumConnections: Int = 1024, idleTimeout: Duration = .seconds(30), closeDeadline: Duration = .seconds(5),
        shutdownDeadline: Duration = .seconds(10), maximumFrameLength: UInt32 = LinkLimits.defaultMaximumFrameLength,
        pendingLimit: Int = 4 << 20, pendingBudget: Int = 256 << 20, abortiveClose: Bool = false, serverID: String = "linger",
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) {
        self.host = host
        self.port = port
        self.sink = sink
        self.tokens = tokens
        self.tls = tls
        self.maximumConnections = maximumConnections
        self.idleTimeout = idleTimeout
        self.closeDeadline = closeDeadline
        self.shutdownDeadline = shutdownDeadline
        self.maximumFrameLength = maximumFrameLength
        self.pendingLimit = pendingLimit
        self.pendingBudget = pendingBudget
        self.abortiveClose = abortiveClose
        self.serverID = serverID
        self.eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }
}

/// The receiving end of the link: dedupes by (client id, stream, sequence), fences a client id to its newest
/// connection, acknowledges only what the sink committed, and on graceful shutdown sends GOAWAY so clients
/// close first.
///
/// Run it in a `ServiceGroup`; a graceful shutdown (SIGTERM/SIGINT there) or cancelling `run()` stops
/// accepting, asks every client to leave, and closes stragglers at the deadline. A sink error that a retry
/// cannot fix (standard output's reader gone) stops the server the same way, and `run()` throws it.
public final class LinkServer: Service {
    public let configuration: LinkServerConfiguration
    private let logger: Logger
    private let metrics: LinkMetrics
    private let registry: ConnectionRegistry
    private let committer: SinkCommitter
    private let budget: PendingBudget
    private let address = Mutex<Result<SocketAddress, any Error>?>(nil)
    private let addressWaiters = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])
    /// The TLS context new connections get; replaced by ``reloadTLS()``, while established connections keep theirs.
    private let tlsContext = NIOLockedValueBox<NIOSSLContext?>(nil)
    /// The tokens new connections are checked against; replaced by ``reloadTokens(_:)``.
    private let tokens: NIOLockedValueBox<[LinkToken]>

    public init(configuration: LinkServerConfiguration, logger: Logger, metrics: LinkMetrics = LinkMetrics(role: "server")) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.committer = SinkCommitter(sink: configuration.sink, logger: logger, metrics: metrics)
        self.registry = ConnectionRegistry(limit: configuration.maximumConnections)
        self.budget = PendingBudget(limit: configuration.pendingBudget)
        self.tokens = NIOLockedValueBox(configuration.tokens)
    }

    /// The bound address, once listening (useful with port 0). Throws if binding failed.
    public func listeningAddress() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            // Checked and registered under one lock, so a result published in between cannot be missed.
            let known = addressWaiters.withLock { waiters -> Result<SocketAddress, any Error>? in
                if let result = address.withLock({ $0 }) { return result }
                waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(with: known) }
        }
    }

    /// Reopens the sink's output (after logrotate renamed it; the CLI calls this on SIGHUP). Returns what
    /// happened, in words for the log.
    public func reopenSink() async throws -> String? {
        try await committer.reopen(on: configuration.eventLoopGroup.any()).get()
    }

    /// Reads the TLS certificate, key and client CA again (the CLI calls this on SIGHUP): new connections use
    /// them, established ones keep the session they have. Throws, keeping the current ones, when the files are
    /// unusable (a key that does not match the certificate, say). Blocking: run it off the event loops.
    public func reloadTLS() throws -> String? {
        guard let tls = configuration.tls else { return nil }
        let context = try tls.makeContext()
        tlsContext.withLockedValue { $0 = context }
        return "reloaded the TLS certificate \(tls.certificatePath)"
    }

    /// Replaces the accepted tokens (the CLI calls this on SIGHUP with the token file read again): connections
    /// from now on are checked against them, established ones stay. Throws, keeping the current ones, for an
    /// empty list (that would turn authentication off) or a server started without tokens (turning it on
    /// would refuse clients that were never given one).
    public func reloadTokens(_ tokens: [LinkToken]) throws {
        guard !configuration.tokens.isEmpty else {
            throw LinkError(.configuration, "this server was started without tokens; restart it with --token-file to require them")
        }
        guard !tokens.isEmpty else { throw LinkError(.configuration, "no token in the new list") }
        self.tokens.withLockedValue { $0 = tokens }
    }

    /// Open connections right now.
    public var connectionCount: Int { registry.connectionCount }

    public func run() async throws {
        let channel: any Channel
        do {
            _ = try reloadTLS()
            channel = try await bind()
        } catch {
            let failure = (error as? LinkError)
                ?? LinkError(.configuration, "cannot listen on \(configuration.host):\(configuration.port): \(describeBindError(error))")
            publish(.failure(failure))
            committer.finish()
            try? await configuration.sink.close()
            throw failure
        }
        if let local = channel.localAddress { publish(.success(local)) }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map(ServerConnectionHandler.hostPort) ?? "?")"])

        let committer = self.committer
        var sinkFailure: (any Error)?
        let stopping = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do {
                    try await committer.run()
                    return nil
                } catch {
                    return error
                }
            }
            // Graceful shutdown, cancellation and a fatal sink error all stop the listener and drain.
            group.addTask {
                await withTaskCancellationOrGracefulShutdownHandler {
                    try? await channel.closeFuture.get()
                } onCancelOrGracefulShutdown: {
                    stopping.withLockedValue { $0 = $0 ?? .now }
                    channel.close(promise: nil)
                }
                return nil
            }
            if let first = await group.next(), let error = first {
                sinkFailure = error
                channel.close(promise: nil)
            }
            let began = stopping.withLockedValue { $0 = $0 ?? .now; return $0! }
            await drain()
            committer.finish()
            // The whole stop fits in the shutdown deadline: a sink still retrying a failure (a full disk, a
            // database that is down) stops retrying when it is up; nothing it did not store was acknowledged.
            // Cancelling the committer ends its retry's backoff at once; a commit in progress finishes first.
            let end = began + configuration.shutdownDeadline
            group.addTask {
                do { try await Task.sleep(until: end, clock: .continuous) } catch { return nil }
                return ShutdownDeadlinePassed()
            }
            while let next = await group.next() {
                if next is ShutdownDeadlinePassed {
                    group.cancelAll()
                } else if let error = next, sinkFailure == nil {
                    sinkFailure = error
                    group.cancelAll()  // the committer is done: the deadline's sleep need not run out
                } else if next == nil, committer.isDone {
                    group.cancelAll()
                }
            }
        }
        try await configuration.sink.close()
        if let sinkFailure {
            throw LinkError(.sink, (sinkFailure as? LinkSinkError)?.message ?? "\(sinkFailure)")
        }
    }

    private func bind() async throws -> any Channel {
        let settings = ServerConnectionHandler.Settings(
            session: ServerSession.Configuration(
                tokens: configuration.tokens, serverID: configuration.serverID,
                keepMessageBytes: configuration.sink.needsMessageBytes, acceptsNewlines: configuration.sink.acceptsNewlines,
                pendingLimit: configuration.pendingLimit, requiresCertificateIdentity: configuration.tls?.clientCAPath != nil),
            idleTimeout: TimeAmount(configuration.idleTimeout), closeDeadline: TimeAmount(configuration.closeDeadline),
            waitsForTransportEOF: configuration.tls != nil, tlsFailures: configuration.tls == nil ? nil : LogThrottle(every: .seconds(30)))
        let registry = self.registry, committer = self.committer, budget = self.budget, logger = self.logger, metrics = self.metrics
        let abortive = configuration.abortiveClose
        let maximumFrameLength = configuration.maximumFrameLength
        let tlsContext = configuration.tls == nil ? nil : self.tlsContext
        let tokens = self.tokens
        return try await ServerBootstrap(group: configuration.eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Reads grow to 256 KiB under load but start small: NIO keeps each channel's receive buffer for
            // reuse, and a 64 KiB start cost 67 KiB per idle connection. NIO reads up to 4 buffers per wake-up
            // before the handler can pause, so this is also how far a connection can overshoot its pending
            // limit and the shared budget: at 1 MiB, 4 MiB each, and 32 senders into a stalled sink held all
            // 256 MB they sent; 256 KiB was as fast in the fan-in benchmark.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 << 10))
            .childChannelInitializer { child in
                let admitted = registry.admit(child)
                let lingerSet: EventLoopFuture<Void>
                if abortive, let provider = child as? any SocketOptionProvider {
                    lingerSet = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                } else {
                    lingerSet = child.eventLoop.makeSucceededVoidFuture()
                }
                return lingerSet.flatMapThrowing {
                    var settings = settings
                    settings.session.tokens = tokens.withLockedValue { $0 }
                    let handler = ServerConnectionHandler(settings: settings, committer: committer, budget: budget, registry: registry, logger: logger, metrics: metrics)
                    let operations = child.pipeline.syncOperations
                    if let tlsContext {
                        try operations.addHandler(TLSDetector {
                            guard let context = tlsContext.withLockedValue({ $0 }) else { throw LinkError(.configuration, "TLS is not set up") }
                            return NIOSSLServerHandler(context: context)
                        })
                    }
                    try operations.addHandler(IdleStateHandler(readTimeout: settings.idleTimeout))
                    try operations.addHandler(ByteToMessageHandler(LinkInboundDecoder(maximumFrameLength: maximumFrameLength)))
                    try operations.addHandler(handler)
                    if !admitted { child.pipeline.fireUserInboundEventTriggered(RefuseConnection()) }
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
    }

    /// GOAWAY to every connection, then wait for the clients to close first, up to the deadline.
    private func drain() async {
        let open = registry.beginShutdown()
        for child in open {
            child.pipeline.fireUserInboundEventTriggered(ServerShutdown())
        }
        let allClosed = EventLoopFuture.andAllComplete(open.map(\.closeFuture), on: configuration.eventLoopGroup.any())
        let deadline = configuration.shutdownDeadline
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await allClosed.get() }
            group.addTask { try? await Task.sleep(for: deadline) }
            await group.next()
            group.cancelAll()
        }
        let stragglers = registry.beginShutdown()
        for child in stragglers { try? await child.close() }
        logger.info("stopped", metadata: ["forcedClosed": "\(stragglers.count)"])
    }

    private func publish(_ result: Result<SocketAddress, any Error>) {
        let waiters = addressWaiters.withLock { waiters in
            address.withLock { $0 = result }
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}

/// The shutdown deadline ran out while the sink was still busy.
private struct ShutdownDeadlinePassed: Error {}

/// A bind error in words ("address already in use"), not a Swift type dump.
func describeBindError(_ error: any Error) -> String {
    if let error = error as? IOError { return describeErrno(error.errnoCode) }
    if error is SocketAddressError || error is SocketAddressError.UnknownHost {
        return "not an address of this machine (a name that does not resolve, or not an IP address)"
    }
    return "\(error)"
}

extension TimeAmount {
    /// A `Duration` as NIO's `TimeAmount` (public configuration speaks `Duration`), clamped to what Int64
    /// nanoseconds hold: a library caller may pass any `Duration`, and a timeout of 292 years is forever.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow {
            self = .nanoseconds(seconds < 0 ? .min : .max)
        } else {
            let (total, carried) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
            self = .nanoseconds(carried ? (seconds < 0 ? .min : .max) : total)
        }
    }
}
