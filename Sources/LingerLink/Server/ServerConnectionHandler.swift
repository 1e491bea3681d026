import CoreMetrics
import Logging
import Metrics
import NIOCore

/// One server-side connection: parses frames in place (no per-message allocation), dedupes DATA by
/// sequence, stores each read batch in the sink and acknowledges it, and closes on every path.
///
/// Closing discipline: the peer's EOF (inputClosed, since half-closure is on) stores what arrived and
/// closes at once; errors send ERROR then close gracefully (shut the write side, wait for EOF or a
/// deadline, close); an idle peer is closed after the idle timeout; shutdown sends GOAWAY and lets the
/// client close first, with a deadline after which the server closes.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings {
        var tokens: [String]
        var idleTimeout: TimeAmount
        var closeDeadline: TimeAmount
        var maximumFrameLength: UInt32
        var serverID: String
    }

    private enum State {
        case awaitingHello
        case streaming(clientID: String)
        case closing
        case closed
    }

    private let sessions: SessionTable
    private let settings: Settings
    private let logger: Logger
    private let metrics: LinkMetrics
    private var state = State.awaitingHello
    private var cumulation: ByteBuffer?
    private var highest: UInt64 = 0
    private var pendingThrough: UInt64 = 0
    private var pendingRecords: ByteBuffer?
    private var lastRead = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    private var closeDeadline: Scheduled<Void>?

    init(sessions: SessionTable, settings: Settings, logger: Logger, metrics: LinkMetrics) {
        self.sessions = sessions
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
    }

    func channelActive(context: ChannelHandlerContext) {
        metrics.connections.increment()
        scheduleIdleCheck(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        closeDeadline?.cancel()
        metrics.connections.decrement()
        if case .streaming(let clientID) = state {
            sessions.remove(context.channel, clientID: clientID)
        } else {
            sessions.remove(context.channel, clientID: nil)
        }
        state = .closed
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        var incoming = unwrapInboundIn(data)
        if case .closing = state { return }  // draining toward EOF; nothing more is accepted
        do {
            if var partial = cumulation {
                // Complete the one frame that straddled the previous read by copying only its missing
                // bytes; the rest of this read is parsed where it lies (copying every read into a
                // cumulation buffer cost a seventh of the server's time with 1 KiB messages). Two steps,
                // because the length field itself may be what straddled.
                cumulation = nil
                for _ in 0..<2 where incoming.readableBytes > 0 {
                    var head = incoming.readSlice(length: min(Self.bytesToComplete(partial), incoming.readableBytes))!
                    partial.writeBuffer(&head)
                }
                try processFrames(&partial, context: context)
                if partial.readableBytes > 0 {
                    // Still incomplete: this read ended inside the frame (or we stopped while closing).
                    cumulation = partial
                    return
                }
            }
            try processFrames(&incoming, context: context)
            if incoming.readableBytes > 0 {
                if case .closing = state { return }
                // Copy the partial frame at the end (at most one frame) rather than keep a slice: a slice
                // would stop NIO from reusing this receive buffer for the next read.
                var tail = context.channel.allocator.buffer(capacity: incoming.readableBytes + 4096)
                tail.writeBuffer(&incoming)
                cumulation = tail
            }
        } catch let error as LinkProtocolError {
            logger.info("closing connection after a protocol error", metadata: ["error": "\(error)"])
            fail(context: context, code: .protocolError, text: error.description)
        } catch let error as LinkError {
            fail(context: context, code: .sinkFailure, text: error.message)
        } catch {
            fail(context: context, code: .protocolError, text: "\(error)")
        }
    }

    /// Parses every complete frame in `buffer`: DATA in place, the rest one by one.
    private func processFrames(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) throws {
        while buffer.readableBytes > 0 {
            if case .streaming = state {
                try acceptDataFrames(from: &buffer)
            }
            guard let frame = try buffer.readLinkFrame(maximumLength: settings.maximumFrameLength) else { return }
            try handle(frame, context: context)
            if case .closing = state { return }
        }
    }

    /// How many more bytes `partial` needs to hold one whole frame (the length field first). An oversized
    /// length asks for just enough to let the parser see and refuse it.
    private static func bytesToComplete(_ partial: ByteBuffer) -> Int {
        guard let length: UInt32 = partial.getInteger(at: partial.readerIndex) else { return 4 - partial.readableBytes }
        let total = 4 + Int(min(length, LinkLimits.defaultMaximumFrameLength * 2))
        return max(0, total - partial.readableBytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        commitAndAcknowledge(context: context)
        context.flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdown {
            goAway(context: context, code: .shuttingDown, text: "the server is shutting down; reconnect later")
            return
        }
        if event is RefuseConnection {
            fail(context: context, code: .tooManyConnections, text: "the server is at its connection limit; try again later")
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The peer closed its side. Store and acknowledge what arrived, then close ours: never leave
            // this socket in CLOSE_WAIT.
            commitAndAcknowledge(context: context)
            context.flush()
            context.close(mode: .all, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// Asks the client to leave: GOAWAY, then the client closes first; after the deadline, we close.
    func goAway(context: ChannelHandlerContext, code: LinkCloseCode, text: String) {
        guard case .closing = state else {
            commitAndAcknowledge(context: context)
            write(.goAway(code: code, text: text), context: context)
            context.flush()
            beginClosing(context: context, shutOutput: false)
            return
        }
    }

    // MARK: - Frames

    /// The hot path: consumes consecutive complete DATA frames straight from the bytes, without building a
    /// `LinkFrame` or a slice per message, working on locals (class properties would pay an exclusivity
    /// check per access). Stops at the first frame of another type or an incomplete frame.
    private func acceptDataFrames(from buffer: inout ByteBuffer) throws {
        var highest = self.highest
        var accepted = 0, duplicates = 0
        let keepRecords = sessions.sink.needsRecords
        var records = self.pendingRecords ?? ByteBuffer()
        if keepRecords && self.pendingRecords == nil { records.reserveCapacity(buffer.readableBytes + 4096) }
        let limit = settings.maximumFrameLength
        var gap: UInt64?
        let consumed = buffer.withUnsafeReadableBytes { bytes -> Int in
            var offset = 0
            while bytes.count - offset >= 13 {
                let length = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                guard bytes[offset + 4] == LinkFrame.Kind.data.rawValue, length >= 9, length <= limit,
                    bytes.count - offset >= 4 + Int(length)
                else { break }
                let sequence = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + 5, as: UInt64.self))
                if sequence == highest &+ 1 {
                    highest = sequence
                    accepted += 1
                    if keepRecords {
                        records.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[(offset + 13)..<(offset + 4 + Int(length))]))
                        records.writeInteger(UInt8(ascii: "\n"))
                    }
                } else if sequence <= highest {
                    duplicates += 1
                } else {
                    gap = sequence
                    break
                }
                offset += 4 + Int(length)
            }
            return offset
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if accepted > 0 {
            self.highest = highest
            self.pendingThrough = highest
            if keepRecords { self.pendingRecords = records }
            metrics.messagesAccepted.increment(by: Int64(accepted))
        }
        if duplicates > 0 { metrics.duplicatesDropped.increment(by: Int64(duplicates)) }
        if let gap { throw LinkProtocolError(.malformed("sequence \(gap) after \(highest) skips messages")) }
    }

    private func handle(_ frame: LinkFrame, context: ChannelHandlerContext) throws {
        switch (state, frame) {
        case (.awaitingHello, .hello(let hello)):
            try accept(hello, context: context)
        case (.streaming, .data(let sequence, let payload)):
            if sequence == highest + 1 {
                highest = sequence
                if sessions.sink.needsRecords {
                    if pendingRecords == nil { pendingRecords = context.channel.allocator.buffer(capacity: 64 * 1024) }
                    var payload = payload
                    pendingRecords!.writeBuffer(&payload)
                    pendingRecords!.writeInteger(UInt8(ascii: "\n"))
                }
                pendingThrough = sequence
                metrics.messagesAccepted.increment()
            } else if sequence <= highest {
                metrics.duplicatesDropped.increment()
            } else {
                throw LinkProtocolError(.malformed("sequence \(sequence) after \(highest) skips messages"))
            }
        case (_, .ping(let token)):
            write(.pong(token: token), context: context)
        case (_, .pong):
            break
        case (.streaming, .goAway), (.awaitingHello, .goAway):
            commitAndAcknowledge(context: context)
            context.flush()
            beginClosing(context: context, shutOutput: true)
        case (_, .error(let code, let text)):
            logger.info("client reported an error", metadata: ["code": "\(code)", "text": "\(text)"])
            beginClosing(context: context, shutOutput: true)
        default:
            throw LinkProtocolError(.malformed("unexpected \(frame.kindName) frame"))
        }
    }

    private func accept(_ hello: LinkFrame.Hello, context: ChannelHandlerContext) throws {
        guard hello.version == LinkFrame.protocolVersion else {
            fail(context: context, code: .unsupportedVersion, text: "protocol version \(hello.version) is not supported; this server speaks \(LinkFrame.protocolVersion)")
            return
        }
        guard LinkClientID.isValid(hello.clientID) else {
            fail(context: context, code: .protocolError, text: "client id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
            return
        }
        if !settings.tokens.isEmpty && !settings.tokens.contains(where: { constantTimeEquals($0, hello.token) }) {
            logger.notice("rejected a client with a wrong token", metadata: ["client": "\(hello.clientID)"])
            fail(context: context, code: .unauthorized, text: "authentication failed: the token is not accepted by this server")
            return
        }
        let (resume, replaced) = sessions.open(clientID: hello.clientID, channel: context.channel)
        if let replaced {
            // A half-open old connection of the same client: it will never be acknowledged again.
            replaced.close(promise: nil)
        }
        highest = resume
        pendingThrough = resume
        lastAcknowledged = resume  // the client learns this point from WELCOME; no ACK or store needed
        state = .streaming(clientID: hello.clientID)
        write(.welcome(serverID: settings.serverID, highestAccepted: resume), context: context)
        context.flush()
    }

    // MARK: - Closing

    private func commitAndAcknowledge(context: ChannelHandlerContext) {
        guard case .streaming(let clientID) = state, pendingThrough > 0 else { return }
        let records = pendingRecords ?? ByteBuffer()
        guard records.readableBytes > 0 || pendingThrough > lastAcknowledged else { return }
        do {
            if pendingThrough > lastAcknowledged {
                guard try sessions.store(clientID: clientID, channel: context.channel, through: pendingThrough, records: records) else {
                    context.close(promise: nil)  // replaced by a newer connection of the same client
                    return
                }
            }
            pendingRecords?.clear()
            lastAcknowledged = pendingThrough
            write(.ack(sequence: pendingThrough), context: context)
        } catch {
            logger.error("sink failed", metadata: ["error": "\(error)"])
            fail(context: context, code: .sinkFailure, text: "the server could not store data: \(error)")
        }
    }

    private var lastAcknowledged: UInt64 = 0

    /// ERROR, then a graceful close, so the text arrives (never a reset).
    private func fail(context: ChannelHandlerContext, code: LinkCloseCode, text: String) {
        if case .closing = state { return }
        if case .closed = state { return }
        write(.error(code: code, text: text), context: context)
        context.flush()
        beginClosing(context: context, shutOutput: true)
    }

    /// Shuts our write side (when asked) and waits for the peer's EOF, closing at the deadline regardless.
    private func beginClosing(context: ChannelHandlerContext, shutOutput: Bool) {
        state = .closing
        if shutOutput { context.close(mode: .output, promise: nil) }
        let channel = context.channel
        closeDeadline = context.eventLoop.scheduleTask(in: settings.closeDeadline) {
            channel.close(promise: nil)
        }
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        let quarter = TimeAmount.nanoseconds(settings.idleTimeout.nanoseconds / 4)
        let interval = quarter > .milliseconds(50) ? quarter : .milliseconds(50)
        idleCheck = context.eventLoop.scheduleTask(in: interval) { [weak self] in
            guard let self else { return }
            if NIODeadline.now() - self.lastRead > self.settings.idleTimeout {
                self.logger.info("closing an idle connection")
                self.metrics.idleTimeouts.increment()
                self.goAway(context: context, code: .idleTimeout, text: "nothing received for \(self.settings.idleTimeout)")
                // A vanished peer will not answer: close now rather than after the deadline.
                context.close(promise: nil)
            } else {
                self.scheduleIdleCheck(context: context)
            }
        }
    }

    private func write(_ frame: LinkFrame, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 32)
        buffer.writeLinkFrame(frame)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }
}

@available(*, unavailable)
extension ServerConnectionHandler: Sendable {}

/// Compares secrets in time independent of where they differ.
func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
    for i in 0..<max(x.count, y.count) {
        difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return difference == 0
}

extension LinkFrame {
    var kindName: String {
        switch self {
        case .hello: "HELLO"
        case .welcome: "WELCOME"
        case .data: "DATA"
        case .ack: "ACK"
        case .ping: "PING"
        case .pong: "PONG"
        case .goAway: "GOAWAY"
        case .error: "ERROR"
        }
    }
}
