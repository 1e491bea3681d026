import CoreMetrics
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// One server-side connection: a thin shell over ``ServerSession``. It feeds the session the decoded frames,
/// the sink's answers and the idle events, and performs what the session decides: writes, commits through
/// the ``SinkCommitter``, pausing reads (backpressure), and closing on every path.
///
/// Pipeline: `IdleStateHandler(read: idle timeout)` → `ByteToMessageHandler(LinkInboundDecoder)` → this
/// handler; after WELCOME a second `IdleStateHandler(write: the client's idle timeout / 3)` at the front
/// makes the server PING a client that waits for a slow sink.
final class ServerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = LinkInbound
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings {
        var session: ServerSession.Configuration
        var idleTimeout: TimeAmount
        var closeDeadline: TimeAmount
        /// TLS: the session learns of the client's close from close_notify, a moment before the TCP FIN.
        /// Closing then would send our FIN first and leave TIME_WAIT on the server, so the last close waits
        /// for the FIN itself (``TLSDetector`` reports it) or the close deadline.
        var waitsForTransportEOF = false
        /// Failed TLS handshakes, logged now and then (shared by every connection of the server).
        var tlsFailures: LogThrottle?
    }

    private var session: ServerSession
    private let settings: Settings
    private let committer: SinkCommitter
    private let budget: PendingBudget
    /// Bytes taken from the budget for messages not yet in a commit; a commit carries them back when it returns.
    private var takenSinceCommit = 0
    /// The commit in flight, kept to reuse its buffers once it is stored.
    private var inFlight: [LinkSinkBatch] = []
    private let registry: ConnectionRegistry
    private let logger: Logger
    private let metrics: LinkMetrics
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var closeDeadline: Scheduled<Void>?
    private var transportEOFSeen = false
    private var closeAtTransportEOF = false
    /// `host:port` of the client, kept from the start: the channel forgets it once closed, when the last
    /// log line about the connection is written.
    private var peer = "?"
    /// The client id this connection claimed (the session forgets it once the connection winds down).
    private var client = "-"

    init(settings: Settings, committer: SinkCommitter, budget: PendingBudget, registry: ConnectionRegistry, logger: Logger, metrics: LinkMetrics) {
        self.session = ServerSession(configuration: settings.session)
        self.settings = settings
        self.committer = committer
        self.budget = budget
        self.registry = registry
        self.logger = logger
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        metrics.connections.increment()
        peer = context.remoteAddress.map(Self.hostPort) ?? "?"
        logger.debug("connection opened", metadata: ["peer": "\(peer)"])
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeDeadline?.cancel()
        metrics.connections.decrement()
        registry.remove(context.channel)
        // What never reached a commit is dropped with the connection; a commit in flight gives its own back.
        budget.release(takenSinceCommit)
        takenSinceCommit = 0
        budget.forget(owner: ObjectIdentifier(self))
        logger.debug("connection closed", metadata: ["client": "\(client)", "peer": "\(peer)"])
        session.closed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .data(let frames):
            let action = session.dataReceived(frames)
            if session.lastAcceptedBytes > 0 {
                budget.take(session.lastAcceptedBytes)
                takenSinceCommit += session.lastAcceptedBytes
            }
            if session.lastAccepted > 0 { metrics.messagesAccepted.increment(by: Int64(session.lastAccepted)) }
            if session.lastDuplicates > 0 { metrics.duplicatesDropped.increment(by: Int64(session.lastDuplicates)) }
            run(action, context: context)
        case .frame(let frame):
            run(session.frameReceived(frame), context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    /// Reads go on only while the session wants them and the server's pending budget has room (backpressure
    /// from the sink).
    func read(context: ChannelHandlerContext) {
        if mayRead(context: context) {
            context.read()
        } else {
            readPending = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as IdleStateHandler.IdleStateEvent where event == .read:
            let action = session.readIdle(timeout: settings.idleTimeout)
            if action != .none {
                logger.info("closing an idle connection", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)"])
                metrics.idleTimeouts.increment()
            }
            run(action, context: context)
        case let event as IdleStateHandler.IdleStateEvent where event == .write:
            run(session.writeIdle(), context: context)
        case let event as ChannelEvent where event == .inputClosed:
            // The peer closed its side: finish and close ours, never leaving this socket in CLOSE_WAIT.
            let action = session.inputClosed()
            if action == .close { closeAfterPeer(context: context) } else { run(action, context: context) }
        case is PeerClosedTransport:
            transportEOFSeen = true
            if closeAtTransportEOF { context.close(promise: nil) }
        case let event as TLSUserEvent:
            // On handshakeCompleted the certificate was verified against the client CA; its names decide which
            // client ids this connection may claim.
            guard case .handshakeCompleted = event else { return context.fireUserInboundEventTriggered(event) }
            let certificate = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()) ?? nil
            session.certificateVerified(names: CertificateNames(der: (try? certificate?.toDERBytes()) ?? []).all)
            context.fireUserInboundEventTriggered(event)
        case is PlaintextOnTLSPort:
            session.plaintextOnTLSPort()
        case is ServerShutdown:
            run(session.shutdownRequested(), context: context)
        case is RefuseConnection:
            run(session.connectionRefused(), context: context)
        case is YieldSlot:
            logger.info("asking a sender to yield its slot to one waiting", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)"])
            run(session.yieldRequested(), context: context)
        case is ConnectionReplaced:
            metrics.replacedConnections.increment()
            logger.info("a newer connection claimed this client id; closing this one",
                        metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)"])
            run(session.replaced(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? LinkProtocolError {
            logger.info("protocol error", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)", "error": "\(error)"])
            run(session.protocolError(error), context: context)
        } else {
            // A socket error (reset, write failure) or a failed TLS handshake: nothing more can be said on this
            // connection.
            if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
                // Said at the default level, in words, at most once per 30 s per reason (a misconfigured fleet
                // must not flood the log): an operator otherwise never learns why senders do not arrive.
                let reason = ServerTLSFailure.describe(error)
                if let count = settings.tlsFailures?.shouldLog(reason) {
                    logger.warning("TLS handshake failed with \(peer): \(reason)\(count > 1 ? " (\(count) times in the last 30 s)" : "")")
                } else {
                    logger.debug("TLS failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                }
            } else {
                logger.debug("connection error", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)", "error": "\(error)"])
            }
            session.closed()
            context.close(promise: nil)
        }
    }

    /// `10.0.0.7:51234` or `[::1]:51234`: how people write an address, not how NIO prints its type.
    static func hostPort(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    // MARK: - Actions

    private func run(_ action: ServerSession.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .claim(let clientID):
            let channel = context.channel
            // The connection limit counts sessions, and hands them out in turn (``FairAdmission``).
            if let refusal = registry.hello(channel, clientID: clientID) {
                if let line = refusal.log { logger.warning("\(line)") }
                refusal.yielder?.pipeline.fireUserInboundEventTriggered(YieldSlot())
                return run(session.connectionRefused(), context: context)
            }
            committer.claim(clientID: clientID, on: context.eventLoop).assumeIsolated().whenComplete { result in
                self.claimCompleted(result, clientID: clientID, channel: channel)
            }
        case .welcome(let serverID, let mark, let streams, let keepalive):
            client = session.clientID ?? "-"
            logger.debug("client connected", metadata: [
                "client": "\(client)", "peer": "\(peer)", "resumesAfter": "\(mark)", "streams": "\(streams.count)",
            ])
            write(.welcome(serverID: serverID, highestAccepted: mark, streams: streams, features: .current), context: context)
            context.flush()
            if let keepalive, keepalive > .zero {
                try? context.pipeline.syncOperations.addHandler(IdleStateHandler(writeTimeout: keepalive), position: .first)
            }
        case .commit(let batches):
            commit(batches, context: context)
        case .acknowledge(let acknowledgements, let next):
            for ack in acknowledgements { write(.ack(stream: ack.stream, sequence: ack.through), context: context) }
            context.flush()
            if let next { commit(next, context: context) }
            resumeReadingIfWanted(context: context)
        case .acknowledgeAndClose(let acknowledgements):
            for ack in acknowledgements { write(.ack(stream: ack.stream, sequence: ack.through), context: context) }
            context.flush()
            closeAfterPeer(context: context)
        case .pong(let token):
            write(.pong(token: token), context: context)
        case .ping:
            write(.ping(token: 0), context: context)
            context.flush()
        case .goAway(let code, let text):
            logger.debug("GOAWAY", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)", "code": "\(code)", "text": "\(text)"])
            write(.goAway(code: code, text: text), context: context)
            context.flush()
            // The client closes first (TIME_WAIT lands on it); a client that vanished is closed at the deadline.
            startCloseDeadline(context: context)
        case .error(let code, let text):
            logger.notice("refusing a client", metadata: ["client": "\(session.clientID ?? "-")", "peer": "\(peer)", "code": "\(code)", "text": "\(text)"])
            write(.error(code: code, text: text), context: context)
            context.flush()
            context.close(mode: .output, promise: nil)
            startCloseDeadline(context: context)
        case .close:
            context.close(promise: nil)
        }
    }

    private func commit(_ batches: [LinkSinkBatch], context: ChannelHandlerContext) {
        let carried = takenSinceCommit
        takenSinceCommit = 0
        inFlight = batches
        committer.commit(batches, on: context.eventLoop).assumeIsolated().whenComplete { result in
            self.budget.release(carried)
            var spare: [ByteBuffer] = []
            if case .success = result {
                for index in self.inFlight.indices { spare.append(self.inFlight[index].takeLinesForReuse()) }
            }
            self.inFlight = []
            guard let context = self.context else { return }
            switch result {
            case .success(let outcomes):
                self.session.reuse(spare)
                self.run(self.session.committed(outcomes), context: context)
            case .failure(let error as LinkSinkError): self.run(self.session.commitFailed(error), context: context)
            case .failure(let error): self.run(self.session.commitFailed(LinkSinkError("\(error)", isRetryable: false)), context: context)
            }
        }
    }

    private func claimCompleted(_ result: Result<LinkSinkClaim, any Error>, clientID: String, channel: any Channel) {
        guard let context else { return }
        switch result {
        case .success(let claim):
            let (isNewest, replaced) = registry.claimed(clientID: clientID, epoch: claim.epoch, by: channel)
            replaced?.pipeline.fireUserInboundEventTriggered(ConnectionReplaced())
            run(session.claimed(claim, isNewest: isNewest), context: context)
        case .failure(let error):
            let sinkError = (error as? LinkSinkError) ?? LinkSinkError("\(error)", isRetryable: false)
            run(session.commitFailed(sinkError), context: context)
        }
    }

    private func resumeReadingIfWanted(context: ChannelHandlerContext) {
        if readPending && mayRead(context: context) {
            readPending = false
            context.read()
        }
    }

    /// The session wants data and the shared budget has room; if only the budget is short, this connection
    /// is woken when commits give bytes back.
    private func mayRead(context: ChannelHandlerContext) -> Bool {
        guard session.shouldRead else { return false }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let room = budget.held < budget.limit
            || budget.hasRoom(owner: ObjectIdentifier(self), eventLoop: context.eventLoop) {
                guard let context = handler.value.context else { return }
                handler.value.resumeReadingIfWanted(context: context)
            }
        // Paused for the budget, this connection still hears our PINGs and is not timed out for our silence.
        session.budgetPaused(!room)
        return room
    }

    /// Closes once the client's TCP FIN is in (at once without TLS, where the session only learns of the close
    /// from the FIN); the close deadline ends a wait for a FIN that never comes.
    private func closeAfterPeer(context: ChannelHandlerContext) {
        guard settings.waitsForTransportEOF, !transportEOFSeen else { return context.close(promise: nil) }
        closeAtTransportEOF = true
        startCloseDeadline(context: context)
    }

    private func startCloseDeadline(context: ChannelHandlerContext) {
        guard closeDeadline == nil else { return }
        let channel = context.channel
        closeDeadline = context.eventLoop.scheduleTask(in: settings.closeDeadline) { channel.close(promise: nil) }
        // Keep reading while closing, so the peer's EOF is seen (reads may have been paused).
        readPending = false
        context.read()
    }

    private func write(_ frame: LinkFrame, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 32)
        buffer.writeLinkFrame(frame)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }
}

@available(*, unavailable)
extension ServerConnectionHandler: Sendable {}

/// Fired into a connection's pipeline when the server is over its connection limit.
struct RefuseConnection {}
/// Another sender waits for a session: this one is asked to leave and come back (``FairAdmission``).
struct YieldSlot {}
/// Fired into every connection's pipeline when the server shuts down gracefully.
struct ServerShutdown {}
/// Fired into a connection's pipeline when a newer connection claimed its client id.
struct ConnectionReplaced {}
