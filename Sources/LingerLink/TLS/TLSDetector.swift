import NIOCore
import NIOSSL

/// The first handler of a TLS server's connection. It looks at the first byte the client sends: a TLS
/// ClientHello starts with 0x16 (a handshake record), while a link HELLO starts with the high byte of its
/// length, which is 0. For TLS it puts a `NIOSSLServerHandler` (with the context current at that moment, so
/// a reload applies to new connections only) behind itself and steps aside. For plaintext it steps aside
/// without TLS and tells the connection handler, which answers the HELLO with an ERROR the client can read,
/// so a sender that forgot `--tls-ca` stops at once with the reason instead of retrying a connection that
/// a TLS alert would have cut short.
///
/// It then stays in front as a pass-through for one more job: swift-nio-ssl reports the client's close_notify
/// as the end of input and swallows the TCP FIN that follows, so this handler tells the connection handler
/// when the FIN itself arrives (``PeerClosedTransport``), and the server closes after the client, as in
/// plaintext, leaving TIME_WAIT on the client.
final class TLSDetector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let makeTLSHandler: () throws -> NIOSSLServerHandler
    private var decided = false

    init(makeTLSHandler: @escaping () throws -> NIOSSLServerHandler) {
        self.makeTLSHandler = makeTLSHandler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return context.fireChannelRead(data) }
        decided = true
        let buffer = unwrapInboundIn(data)
        if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x16 {
            do {
                try context.pipeline.syncOperations.addHandler(try makeTLSHandler(), position: .after(self))
            } catch {
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
        } else {
            context.fireUserInboundEventTriggered(PlaintextOnTLSPort())
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.fireUserInboundEventTriggered(PeerClosedTransport())
        }
    }
}

@available(*, unavailable)
extension TLSDetector: Sendable {}

/// Fired into a TLS server's connection whose client spoke plaintext.
struct PlaintextOnTLSPort {}
/// Fired into a TLS server's connection when the client's TCP FIN arrived (after its close_notify).
struct PeerClosedTransport {}
