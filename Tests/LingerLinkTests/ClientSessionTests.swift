import Foundation
import NIOCore
import Testing
@testable import LingerLink

/// The client's session: which ACKs it takes from a server, and which it ignores.
extension ClientSessionTests {
    private func freshSession() -> ClientSession { ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(5)) }

    @Test func anAckIsTakenOnceWelcomedAlsoWhileClosing() {
        var client = freshSession()
        #expect(client.frameReceived(.welcome(serverID: "s", highestAccepted: 0)) == .established(mark: 0, streams: [], features: []))
        #expect(client.frameReceived(.ack(stream: 0, sequence: 3)) == .acknowledged(stream: 0, 3))
        _ = client.closeRequested()
        #expect(client.frameReceived(.ack(stream: 0, sequence: 4)) == .acknowledged(stream: 0, 4), "what the server stored before our GOAWAY")
    }

    /// Bytes that are no frame before WELCOME come from something that is not a linger server (an HTTP
    /// server's "HTTP/1.1 400" reads as a 1.2 GB frame): final, and named as text; after WELCOME they are a
    /// protocol error answered with ERROR.
    @Test func noFrameBeforeWelcomeIsNotALingerServer() {
        var client = freshSession()
        let http = LinkProtocolError(.frameTooLarge(length: 0x4854_5450, limit: 4096))  // "HTTP"
        #expect(client.protocolError(http) == .notALinkServer("it answered \"HTTP…\", which is no link frame"))
        #expect(client.readIdle() == .none, "closing: no PING to it")
        var binary = freshSession()
        #expect(binary.protocolError(LinkProtocolError(.unknownType(99))) == .notALinkServer("its first bytes are no link frame: unknown frame type 99"))
        var welcomed = freshSession()
        _ = welcomed.frameReceived(.welcome(serverID: "s", highestAccepted: 0))
        #expect(welcomed.protocolError(http) == .closeGracefully(last: .error(code: .protocolError, text: http.description)))
    }

    /// Found by the client-session fuzz target: a session that began closing before WELCOME (close(), a
    /// refusal, a malformed frame) took an ACK, which would release unsent lines from the outbox as if
    /// stored. The input is the committed reproducer: close requested, then ACK 1000.
    @Test func anAckBeforeWelcomeIsIgnored() throws {
        let reproducer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Regressions/client-session-ack-before-welcome").standardized
        var bytes = ByteBuffer(bytes: try Data(contentsOf: reproducer))
        #expect(bytes.readInteger(as: UInt8.self) == 5, "op: close requested")
        var client = freshSession()
        #expect(client.closeRequested() == .closeGracefully(last: .goAway(code: .shuttingDown, text: "client closing")))
        #expect(bytes.readInteger(as: UInt8.self) == 0, "op: a frame")
        let ack = try #require(try bytes.readLinkFrame(maximumLength: 4096))
        #expect(ack == .ack(stream: 0, sequence: 1000))
        #expect(client.frameReceived(ack) == .none)

        var refused = freshSession()
        _ = refused.protocolError(LinkProtocolError(.emptyFrame))
        #expect(refused.frameReceived(.ack(stream: 0, sequence: 7)) == .none)
    }
}
