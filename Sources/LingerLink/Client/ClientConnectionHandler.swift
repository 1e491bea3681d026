import CoreMetrics
import NIOCore

/// The client end of one connection: HELLO, resume from WELCOME, stream the outbox, take ACKs, answer
/// PINGs, detect a silent server, and close on every path (client first for planned closes).
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let client: LinkClient
    private var cumulation: ByteBuffer?
    private var lastRead = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var closeDeadline: Scheduled<Void>?
    private var streaming = false
    private var closing = false
    private var pingToken: UInt64 = 0

    init(client: LinkClient) { self.client = client }

    func channelActive(context: ChannelHandlerContext) {
        var hello = context.channel.allocator.buffer(capacity: 64)
        hello.writeLinkFrame(.hello(LinkFrame.Hello(clientID: client.configuration.clientID, token: client.configuration.token)))
        context.writeAndFlush(wrapOutboundOut(hello), promise: nil)
        scheduleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        closeDeadline?.cancel()
        client.connectionEnded(context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        var incoming = unwrapInboundIn(data)
        if cumulation == nil { cumulation = incoming } else { cumulation!.writeBuffer(&incoming) }
        do {
            while let frame = try cumulation!.readLinkFrame(maximumLength: LinkLimits.defaultMaximumFrameLength) {
                handle(frame, context: context)
            }
            if cumulation!.readableBytes == 0 { cumulation = nil }
        } catch {
            client.log("closing after a protocol error from the server: \(error)")
            closeGracefully(context: context, reason: .error(code: .protocolError, text: "\(error)"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is PumpOutbox {
            pump(context: context)
        } else if event is CloseRequested {
            closeGracefully(context: context, reason: .goAway(code: .shuttingDown, text: "client closing"))
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // The server closed its side: close ours now (no CLOSE_WAIT), then reconnect.
            context.close(mode: .all, promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        client.log("connection error: \(error)")
        context.close(promise: nil)
    }

    private func handle(_ frame: LinkFrame, context: ChannelHandlerContext) {
        switch frame {
        case .welcome(_, let highest):
            streaming = true
            client.established(serverHighest: highest, channel: context.channel)
            pump(context: context)
        case .ack(let sequence):
            client.acknowledged(through: sequence)
        case .ping(let token):
            var pong = context.channel.allocator.buffer(capacity: 16)
            pong.writeLinkFrame(.pong(token: token))
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .goAway(let code, let text):
            client.log("server sent GOAWAY (\(code)): \(text)")
            closeGracefully(context: context, reason: nil)
        case .error(let code, let text):
            client.serverRejected(code: code, text: text)
            closeGracefully(context: context, reason: nil)
        case .hello, .data:
            closeGracefully(context: context, reason: .error(code: .protocolError, text: "unexpected \(frame.kindName) from a server"))
        }
    }

    /// Hands every unsent frame to the socket in one flush.
    private func pump(context: ChannelHandlerContext) {
        guard streaming, !closing else { return }
        let slices = client.takeUnsent()
        guard !slices.isEmpty else { return }
        for slice in slices { context.write(wrapOutboundOut(slice), promise: nil) }
        context.flush()
    }

    /// Planned close, client first: optional last frame, shut our write side (FIN after everything queued),
    /// wait for the server's EOF, and close at the deadline regardless.
    private func closeGracefully(context: ChannelHandlerContext, reason: LinkFrame?) {
        guard !closing else { return }
        closing = true
        if let reason {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            buffer.writeLinkFrame(reason)
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        context.flush()
        context.close(mode: .output, promise: nil)
        let channel = context.channel
        closeDeadline = context.eventLoop.scheduleTask(in: client.configuration.closeDeadline) { channel.close(promise: nil) }
    }

    private func scheduleTimer(context: ChannelHandlerContext) {
        let configuration = client.configuration
        let tick = TimeAmount.nanoseconds(max(configuration.pingInterval.nanoseconds / 2, 10_000_000))
        timer = context.eventLoop.scheduleTask(in: tick) { [weak self] in
            guard let self else { return }
            let quiet = NIODeadline.now() - self.lastRead
            if quiet > configuration.idleTimeout {
                // Nothing from the server, not even a PONG: the peer is gone without a FIN (half-open).
                self.client.log("no data from the server for \(quiet); replacing the connection")
                self.client.metrics.idleTimeouts.increment()
                context.close(promise: nil)
                return
            }
            if quiet >= configuration.pingInterval && !self.closing {
                self.pingToken += 1
                var ping = context.channel.allocator.buffer(capacity: 16)
                ping.writeLinkFrame(.ping(token: self.pingToken))
                context.writeAndFlush(self.wrapOutboundOut(ping), promise: nil)
            }
            self.scheduleTimer(context: context)
        }
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}

/// Asks the connection handler to write what the outbox holds.
struct PumpOutbox {}
/// Asks the connection handler to close gracefully (the client is closing).
struct CloseRequested {}
