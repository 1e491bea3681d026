/// Every decision of one client-side connection: events in, actions out (``ClientConnectionHandler``
/// performs them).
///
/// ```
/// helloSent ─WELCOME→ streaming ─GOAWAY / close()→ closing (our FIN first; close at the deadline)
///     ├─ERROR→ closing, with the refusal reported (final unless the code is retryable)
///     └─bytes that are no frame→ closing: not a linger server (final)
/// ```
/// Liveness is judged on what is *received*: every quiet `pingInterval` sends a PING, and once nothing has
/// arrived for `idleTimeout` the connection is presumed half-open and closed, to be replaced.
struct ClientSession {
    enum State: Equatable {
        case helloSent
        case streaming
        case closing
        case closed
    }

    enum Action: Equatable {
        case none
        /// The session is up: resume from the server's marks, reopen the named streams, then send.
        case established(mark: UInt64, streams: [LinkStreamMark], features: LinkServerFeatures)
        case acknowledged(stream: UInt32, UInt64)
        case pong(UInt64)
        case ping
        /// Planned close, client first: write `last` (if any), shut our write side, close at the deadline.
        case closeGracefully(last: LinkFrame?)
        /// The server refused or dismissed the client: report it, then close gracefully.
        case refused(LinkCloseCode, String)
        /// The server asked us to leave for a reason that passes (shutdown, idle): close, then reconnect.
        case dismissed(LinkCloseCode, String)
        /// What answered before WELCOME is not the link protocol (an HTTP or SSH server on that port): report
        /// it as final, then close gracefully without an ERROR frame, which it would not understand.
        case notALinkServer(String)
        /// Close now: the server finished (EOF).
        case close
        /// Close now: nothing arrived for the idle timeout; the connection is presumed half-open.
        case replace
    }

    let pingInterval: Duration
    let idleTimeout: Duration
    private(set) var state = State.helloSent
    private var quiet: Duration = .zero
    /// Whether WELCOME came: a session that starts closing before it (a refusal, a bad frame, close()) has
    /// sent nothing the server could acknowledge, so an ACK then is ignored, never taken (found by fuzzing).
    private var established = false

    init(pingInterval: Duration, idleTimeout: Duration) {
        self.pingInterval = pingInterval
        self.idleTimeout = idleTimeout
    }

    mutating func frameReceived(_ frame: LinkFrame) -> Action {
        quiet = .zero
        heardAFrame = true
        switch (state, frame) {
        case (.closed, _):
            return .none
        case (.helloSent, .welcome(_, let mark, let streams, let features)):
            state = .streaming
            established = true
            return .established(mark: mark, streams: streams, features: features)
        case (.streaming, .ack(let stream, let sequence)):
            return .acknowledged(stream: stream, sequence)
        case (.closing, .ack(let stream, let sequence)):
            return established ? .acknowledged(stream: stream, sequence) : .none
        case (_, .ping(let token)):
            return state == .closing ? .none : .pong(token)
        case (_, .pong):
            return .none
        case (_, .goAway(let code, let text)):
            let wasClosing = state == .closing
            state = .closing
            if !code.isRetryable { return .refused(code, text) }
            return wasClosing ? .none : .dismissed(code, text)
        case (_, .error(let code, let text)):
            state = .closing
            return .refused(code, text)
        case (.closing, _):
            return .none
        default:
            state = .closing
            return .closeGracefully(last: .error(code: .protocolError, text: "unexpected \(frame.kindName) from a server"))
        }
    }

    /// Whether any frame came on this connection (a peer that closes or stays silent before its first frame
    /// may be no linger server at all).
    private(set) var heardAFrame = false

    /// Nothing was read for one `pingInterval`.
    mutating func readIdle() -> Action {
        guard state != .closed else { return .none }
        quiet += pingInterval
        if state == .helloSent && !heardAFrame {
            // A linger server answers HELLO at once (WELCOME, or ERROR): one quiet interval is enough to
            // stop waiting, instead of the whole idle timeout.
            state = .closed
            return .replace
        }
        if quiet >= idleTimeout {
            // Not even a PONG: the server is gone without a FIN (half-open). Replace the connection.
            state = .closed
            return .replace
        }
        return state == .closing ? .none : .ping
    }

    /// The server closed its side: close ours now (no CLOSE_WAIT).
    mutating func inputClosed() -> Action {
        guard state != .closed else { return .none }
        state = .closed
        return .close
    }

    /// The application closes the link.
    mutating func closeRequested() -> Action {
        switch state {
        case .helloSent, .streaming:
            state = .closing
            return .closeGracefully(last: .goAway(code: .shuttingDown, text: "client closing"))
        case .closing, .closed:
            return .none
        }
    }

    mutating func protocolError(_ error: LinkProtocolError) -> Action {
        guard state != .closing && state != .closed else { return .none }
        let beforeWelcome = state == .helloSent
        state = .closing
        if beforeWelcome { return .notALinkServer(Self.whatAnswered(error)) }
        return .closeGracefully(last: .error(code: .protocolError, text: error.description))
    }

    /// What the peer sent, in the words a user recognises: an HTTP or SSH server's first four bytes
    /// ("HTTP", "SSH-") fill the length field the decoder refused, so they are shown as text.
    static func whatAnswered(_ error: LinkProtocolError) -> String {
        if case .frameTooLarge(let length, _) = error.reason {
            let bytes = withUnsafeBytes(of: length.bigEndian) { Array($0) }
            if bytes.allSatisfy({ (0x20..<0x7f).contains($0) }) {
                return "it answered \"\(String(decoding: bytes, as: UTF8.self))…\", which is no link frame"
            }
        }
        return "its first bytes are no link frame: \(error)"
    }

    mutating func closed() { state = .closed }
}
