@testable import LingerLink
import NIOCore

/// The client's session state machine, driven by frames decoded from the input (what a hostile or broken
/// server could send) and by timer, EOF and close events. Invariants:
/// - a session is established at most once, and only from its first state;
/// - an ACK is taken only on an established session;
/// - once closing, nothing new starts: no WELCOME, no PING, no PONG;
/// - once closed (EOF, replaced), every event is ignored;
/// - silence is ended: with nothing received, the connection is replaced after at most
///   idleTimeout ÷ pingInterval quiet intervals.
enum ClientSessionTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        var reader = InputReader(input)
        var session = ClientSession(pingInterval: .seconds(1), idleTimeout: .seconds(5))
        var established = false, closing = false, closed = false
        var quietIntervals = 0

        func perform(_ action: ClientSession.Action, after event: String) {
            if closed, action != .none { violated("\(action) from a closed session (\(event))") }
            switch action {
            case .established:
                if established || closing { violated("established twice, or while closing (\(event))") }
                established = true
            case .acknowledged:
                if !established { violated("an ACK taken before WELCOME (\(event))") }
            case .pong, .ping:
                if closing { violated("\(action) while closing (\(event))") }
            case .closeGracefully, .refused, .dismissed, .notALinkServer:
                closing = true
            case .close, .replace:
                closed = true
            case .none:
                break
            }
        }

        while let op = reader.byte() {
            switch op % 6 {
            case 0, 1, 2:
                guard var buffer = reader.frame(limit: 4096) else { return }
                quietIntervals = 0
                do {
                    guard let frame = try buffer.readLinkFrame(maximumLength: 4096) else { continue }
                    perform(session.frameReceived(frame), after: frame.kindName)
                } catch {
                    perform(session.protocolError(error), after: "decoding error")
                }
            case 3:
                let action = session.readIdle()
                if !closed { quietIntervals += 1 }
                perform(action, after: "read idle")
                if !closed, quietIntervals >= 5 { violated("\(quietIntervals) quiet intervals of 1 s and still not replaced (idle timeout 5 s)") }
            case 4:
                perform(session.inputClosed(), after: "EOF")
            default:
                perform(session.closeRequested(), after: "close requested")
            }
        }
    }
}
