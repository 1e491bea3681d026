import CoreMetrics
import NIOCore
import NIOPosix

/// The client end of one connection: a thin shell over ``ClientSession``. It sends HELLO, hands WELCOME and
/// ACKs to the ``LinkClient``, streams the outbox, and performs the session's closes.
///
/// Pipeline: `IdleStateHandler(read: pingInterval)` → `ByteToMessageHandler(LinkFrameDecoder)` → this handler.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LinkFrame
    typealias OutboundOut = ByteBuffer

    private let client: LinkClient
    /// Where this connection goes, for the messages that name it.
    private let endpoint: LinkClientConfiguration.Endpoint
    private var session: ClientSession
    private var closeDeadline: Scheduled<Void>?
    private var pingToken: UInt64 = 0
    /// The streams opened on this connection: only their messages may be written (the server refuses DATA
    /// on a stream it was not told about).
    private var opened: Set<UInt32> = [0]
    /// What TLS verification saw, to name the reason when the handshake fails; nil without TLS.
    private let verdict: CertificateVerdict?

    init(client: LinkClient, endpoint: LinkClientConfiguration.Endpoint, verdict: CertificateVerdict? = nil) {
        self.client = client
        self.endpoint = endpoint
        self.verdict = verdict
        let configuration = client.configuration
        session = ClientSession(pingInterval: configuration.pingInterval, idleTimeout: configuration.idleTimeout)
    }

    func channelActive(context: ChannelHandlerContext) {
        let configuration = client.configuration
        let idle = configuration.idleTimeout.components
        let milliseconds = idle.seconds * 1000 + idle.attoseconds / 1_000_000_000_000_000
        write(.hello(LinkFrame.Hello(
            clientID: configuration.clientID, token: configuration.token,
            idleTimeoutMilliseconds: UInt32(clamping: milliseconds))), context: context)
        context.flush()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeDeadline?.cancel()
        let heard = session.heardAFrame
        session.closed()
        client.connectionEnded(context.channel, heardAFrame: heard)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(session.frameReceived(unwrapInboundIn(data)), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is PumpOutbox:
            pump(context: context)
        case let open as OpenStreams:
            // A stream opened while this connection streams; one opened before WELCOME goes out with the rest.
            guard session.state == .streaming else { break }
            for (number, name) in open.streams where !opened.contains(number) {
                write(.open(stream: number, id: name), context: context)
                opened.insert(number)
            }
            pump(context: context)
        case let closed as CloseStreams where closed.channel === context.channel:
            guard session.state == .streaming else { break }
            for number in closed.numbers where opened.remove(number) != nil {
                write(.closeStream(stream: number), context: context)
            }
            context.flush()
        case is CloseRequested:
            run(session.closeRequested(), context: context)
        case let event as IdleStateHandler.IdleStateEvent where event == .read:
            run(session.readIdle(), context: context)
        case let event as ChannelEvent where event == .inputClosed:
            run(session.inputClosed(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? LinkProtocolError {
            client.log("closing after a protocol error from the server: \(error)")
            run(session.protocolError(error), context: context)
        } else if verdict != nil, let reason = TLSFailure.finalReason(error, verdict: verdict) {
            client.tlsFailed(reason)
            session.closed()
            context.close(promise: nil)
        } else {
            client.log("connection error: \(describe(error))")
            session.closed()
            context.close(promise: nil)
        }
    }

    private func run(_ action: ClientSession.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .established(let mark, let streams, let features):
            if let reopen = client.established(serverHighest: mark, streams: streams, features: features, channel: context.channel) {
                for (number, name) in reopen {
                    write(.open(stream: number, id: name), context: context)
                    opened.insert(number)
                }
                pump(context: context)
            } else {
                run(session.closeRequested(), context: context)
            }
        case .acknowledged(let stream, let sequence):
            client.acknowledged(stream: stream, through: sequence)
        case .pong(let token):
            write(.pong(token: token), context: context)
            context.flush()
        case .ping:
            pingToken += 1
            write(.ping(token: pingToken), context: context)
            context.flush()
        case .closeGracefully(let last):
            closeGracefully(last: last, context: context)
        case .refused(let code, let text):
            client.serverRefused(code: code, text: text)
            closeGracefully(last: nil, context: context)
        case .dismissed(let code, let text):
            client.serverDismissed(code: code, text: text)
            closeGracefully(last: nil, context: context)
        case .notALinkServer(let what):
            client.notALinkServer("\(endpoint) does not speak the linger link (\(what)); check the address and port")
            closeGracefully(last: nil, context: context)
        case .close:
            context.close(promise: nil)
        case .replace:
            client.metrics.idleTimeouts.increment()
            client.replacedForSilence(heardAFrame: session.heardAFrame)
            context.close(promise: nil)
        }
    }

    /// Hands every unsent frame to the socket in one flush.
    private func pump(context: ChannelHandlerContext) {
        guard session.state == .streaming else { return }
        let slices = client.takeUnsent(streams: opened)
        context.flush()
        guard !slices.isEmpty else { return }
        for slice in slices { context.write(wrapOutboundOut(slice), promise: nil) }
        context.flush()
    }

    /// Planned close, client first: the last frame, then our FIN after everything queued, then wait for the
    /// server's EOF, and close at the deadline regardless.
    private func closeGracefully(last: LinkFrame?, context: ChannelHandlerContext) {
        guard closeDeadline == nil else { return }
        if let last { write(last, context: context) }
        context.flush()
        context.close(mode: .output, promise: nil)
        let channel = context.channel
        closeDeadline = context.eventLoop.scheduleTask(in: TimeAmount(client.configuration.closeDeadline)) { channel.close(promise: nil) }
    }

    private func write(_ frame: LinkFrame, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeLinkFrame(frame)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}

/// Asks the connection handler to write what the outbox holds.
struct PumpOutbox {}
/// Asks the connection handler to close gracefully (the client is closing).
struct CloseRequested {}
/// Asks the connection handler to send OPEN for streams opened while it streams.
struct OpenStreams {
    var streams: [(UInt32, String)]
}

/// Asks a connection's handler to send CLOSE for finished streams the client forgot (see
/// ``LinkServerFeatures/streamClose``); a connection they were not opened on ignores them.
struct CloseStreams {
    var numbers: [UInt32]
    var channel: any Channel

    func send() { channel.pipeline.fireUserInboundEventTriggered(self) }
}

/// A connection error in words (errno text, "name does not resolve"), not a Swift type dump: what a user
/// reads in `send --verbose` and `--progress`.
func describe(_ error: any Error) -> String {
    if let error = error as? IOError { return describeErrno(error.errnoCode) }
    if let error = error as? NIOConnectionError {
        if let first = error.connectionErrors.first { return describe(first.error) }
        if error.dnsAError != nil || error.dnsAAAAError != nil { return "the name \(error.host) does not resolve" }
        return "no address to connect to for \(error.host)"
    }
    if let error = error as? ChannelError, case .connectTimeout = error { return "timed out" }
    return "\(error)"
}
