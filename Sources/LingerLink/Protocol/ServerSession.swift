#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Every decision of one server-side connection, with no channel in sight: events in, actions out. The
/// handler (``ServerConnectionHandler``) only performs the actions.
///
/// Life of a connection:
/// ```
/// awaitingHello ─HELLO ok→ claiming ─claim→ streaming ─peer EOF→ draining ─last ACK→ (close)
///        │                    │              │  ▲ commit in flight: reads stop when pending is full
///        └─bad HELLO→ ERROR   └─stale→ GOAWAY(.replaced)   └─idle, replaced, shutdown, fenced→ closing
/// ```
/// `closing` means a GOAWAY or an ERROR went out: the client closes first, and the handler closes at the
/// deadline regardless. Every path ends in `.close`.
struct ServerSession {
    struct Configuration {
        /// Accepted tokens and the client ids each may use; empty means no token is needed.
        var tokens: [LinkToken]
        var serverID: String
        /// Whether batches keep the message bytes (the discard sink needs none).
        var keepMessageBytes: Bool
        /// Whether a message may contain a newline (line sinks refuse it).
        var acceptsNewlines: Bool
        /// Received bytes held while a commit is in flight before reading stops (backpressure).
        var pendingLimit: Int
        /// TLS with client certificates: the HELLO's client id must be a name of the certificate.
        var requiresCertificateIdentity = false
    }

    /// One stream of the connection: its receive position and the batch it is filling.
    struct StreamState {
        var key: LinkStreamKey
        /// The highest sequence received (stored, in flight or pending).
        var received: UInt64
        var pending: LinkSinkBatch
    }

    /// What a connection holds once its claim came back.
    struct Session {
        var clientID: String
        var epoch: UInt64
        /// Where each stream stood at the claim: the resume point of a stream the client opens.
        var marks: [String: LinkStreamMark]
        /// By stream number; 0 is the unnamed stream and exists from the start.
        var streams: [UInt32: StreamState]
        /// The commit in flight (one per connection): what each stream's ACK will say when it returns.
        var inFlight: [Acknowledgement]?
        /// While draining: what the commits since the peer's EOF stored, for the last ACKs.
        var acknowledged: [Acknowledgement] = []
        /// Bytes (or, without bytes, messages) received and not yet in a commit.
        var pendingSize = 0
        /// Emptied buffers of the last stored commit, for the next pending batches (see
        /// ``LinkSinkBatch/takeLinesForReuse()``).
        var spareLines: [ByteBuffer] = []

        /// Every stream's pending messages as one commit, if none is in flight.
        mutating func takePending() -> [LinkSinkBatch]? {
            guard inFlight == nil else { return nil }
            // Spares are for a connection that keeps sending; one that went quiet gives them back.
            defer { spareLines.removeAll() }
            guard pendingSize > 0 else {
                releaseIdleBuffers()
                return nil
            }
            var batches: [LinkSinkBatch] = []
            var acknowledgements: [Acknowledgement] = []
            // Sorted after filtering: a connection may hold thousands of open streams, few with pending messages.
            for index in streams.compactMap({ $0.value.pending.isEmpty ? nil : $0.key }).sorted() {
                guard var stream = streams[index], !stream.pending.isEmpty else { continue }
                let batch = stream.pending
                stream.pending = LinkSinkBatch(key: stream.key, epoch: epoch, firstSequence: batch.lastSequence + 1,
                                               lines: spareLines.popLast() ?? ByteBuffer())
                streams[index] = stream
                batches.append(batch)
                acknowledgements.append(Acknowledgement(stream: index, through: batch.lastSequence))
            }
            pendingSize = 0
            guard !batches.isEmpty else { return nil }
            inFlight = acknowledgements
            return batches
        }

        /// An idle connection does not keep a large empty buffer from its busy days: thousands of idle
        /// clients would hold the server's memory for nothing.
        private mutating func releaseIdleBuffers() {
            for (index, stream) in streams where stream.pending.isEmpty && stream.pending.lines.capacity > Self.idleBufferLimit {
                streams[index]!.pending = LinkSinkBatch(key: stream.key, epoch: epoch, firstSequence: stream.pending.firstSequence)
            }
        }

        static let idleBufferLimit = 64 << 10
    }

    /// "Everything on `stream` through `through` is stored": one ACK frame.
    struct Acknowledgement: Equatable {
        var stream: UInt32
        var through: UInt64
    }

    enum State {
        case awaitingHello
        case claiming(clientID: String)
        case streaming(Session)
        /// The peer finished sending: commit what is pending, acknowledge, close.
        case draining(Session)
        /// GOAWAY or ERROR sent; a commit still in flight may yet be acknowledged.
        case closing(Session?)
        case closed
        /// Transient, while a session is mutated in place (no copy-on-write of its buffers).
        case modifying
    }

    enum Action: Equatable {
        case none
        /// Ask the sink to fence earlier connections of this client id and say where it stands.
        case claim(clientID: String)
        /// WELCOME, and from now on PING the client when nothing else was written for `keepalive`.
        case welcome(serverID: String, mark: UInt64, streams: [LinkStreamMark], keepalive: TimeAmount?)
        case commit([LinkSinkBatch])
        /// ACK each stream; then commit `next` if given; then resume reading if it had stopped.
        case acknowledge([Acknowledgement], next: [LinkSinkBatch]?)
        /// ACK each stream, then close: the peer has finished.
        case acknowledgeAndClose([Acknowledgement])
        case pong(UInt64)
        case ping
        /// GOAWAY: the client closes first; the handler closes at the deadline.
        case goAway(LinkCloseCode, String)
        /// ERROR, shut our write side, close at the deadline (the text arrives; never a reset).
        case error(LinkCloseCode, String)
        case close

        static func == (a: Action, b: Action) -> Bool {
            func same(_ x: [LinkSinkBatch]?, _ y: [LinkSinkBatch]?) -> Bool {
                x?.map { "\($0.key) \($0.firstSequence) \($0.count)" } == y?.map { "\($0.key) \($0.firstSequence) \($0.count)" }
            }
            switch (a, b) {
            case (.none, .none), (.ping, .ping), (.close, .close): return true
            case (.claim(let x), .claim(let y)): return x == y
            case (.welcome(let s1, let m1, let t1, let k1), .welcome(let s2, let m2, let t2, let k2)):
                return s1 == s2 && m1 == m2 && t1 == t2 && k1 == k2
            case (.commit(let x), .commit(let y)): return same(x, y)
            case (.acknowledge(let a1, let n1), .acknowledge(let a2, let n2)): return a1 == a2 && same(n1, n2)
            case (.acknowledgeAndClose(let x), .acknowledgeAndClose(let y)): return x == y
            case (.pong(let x), .pong(let y)): return x == y
            case (.goAway(let c1, _), .goAway(let c2, _)), (.error(let c1, _), .error(let c2, _)): return c1 == c2
            default: return false
            }
        }
    }

    /// Streams open at once on one connection: bounds the server's memory per connection. A client forgets
    /// the streams it finished (CLOSE), so only what it ships at the same time counts.
    static let maximumStreams = LinkLimits.maximumOpenStreams

    let configuration: Configuration
    private(set) var state = State.awaitingHello
    /// Messages accepted and duplicates dropped by the last ``dataReceived(_:)`` (for metrics).
    private(set) var lastAccepted = 0
    private(set) var lastDuplicates = 0
    /// Bytes of message the last ``dataReceived(_:)`` added to pending batches (0 when bytes are not kept):
    /// what the server's shared pending budget counts.
    private(set) var lastAcceptedBytes = 0

    init(configuration: Configuration) { self.configuration = configuration }

    /// Names of the client's verified certificate (CN and SANs), once its TLS handshake completed.
    private var certificateNames: [String]?
    /// The client spoke plaintext to a server that requires TLS.
    private var plaintext = false

    // MARK: - Transport

    /// The TLS handshake completed; `names` are those of the client's certificate (empty without one).
    mutating func certificateVerified(names: [String]) { certificateNames = names }

    /// The client spoke plaintext on a TLS port: its HELLO gets an ERROR it can read, not a TLS alert.
    mutating func plaintextOnTLSPort() { plaintext = true }

    /// Whether the handler should read from the socket now. Reading stops while a commit is in flight and
    /// the next batch has reached its limit: the sink sets the pace, and memory stays bounded.
    var shouldRead: Bool {
        if case .streaming(let session) = state {
            return session.inFlight == nil || session.pendingSize < configuration.pendingLimit
        }
        return true
    }

    /// The server stopped reading this connection because its shared pending budget is spent: like a commit
    /// in flight, the silence is then the server's, so neither side may time the connection out for it.
    private(set) var pausedByBudget = false

    /// The handler paused (or resumed) reads for the server's shared pending budget.
    mutating func budgetPaused(_ paused: Bool) { pausedByBudget = paused }

    /// Whether the connection waits for the sink (its silence is then ours, not the client's): a commit in
    /// flight, a claim, or reads paused for the shared budget, which only commits give back.
    var isWaitingForSink: Bool {
        if pausedByBudget { return true }
        switch state {
        case .streaming(let session), .draining(let session): return session.inFlight != nil
        case .claiming: return true
        default: return false
        }
    }

    /// The client id this connection speaks for, once claimed.
    var clientID: String? {
        switch state {
        case .claiming(let id): id
        case .streaming(let session), .draining(let session): session.clientID
        case .closing(let session): session?.clientID
        default: nil
        }
    }

    // MARK: - Frames

    mutating func frameReceived(_ frame: LinkFrame) -> Action {
        switch (state, frame) {
        case (.awaitingHello, .hello(let hello)):
            return helloReceived(hello)
        case (.closing, _), (.closed, _), (.draining, _):
            return .none  // leaving: nothing more is accepted, EOF or the deadline ends it
        case (_, .ping(let token)):
            return .pong(token)
        case (_, .pong):
            return .none
        case (.streaming, .goAway):
            // The client is leaving: its EOF follows at once, and the drain starts there. Closing here instead
            // would close before the client (and, over TLS, from inside the read that also carries the
            // client's close_notify, which swift-nio-ssl then waits out for 5 s in CLOSE_WAIT).
            return .none
        case (.streaming(var session), .open(let index, let id)):
            state = .modifying  // the session's dictionaries are then changed in place, not copied
            guard index > 0, session.streams[index] == nil, LinkClientID.isValid(id),
                !session.streams.values.contains(where: { $0.key.stream == id }), session.streams.count <= Self.maximumStreams
            else {
                state = .streaming(session)
                return fail(.protocolError, "cannot open stream \(index) as '\(id)': a number above 0 not yet open, a name of 1-128 of A-Z a-z 0-9 . _ : -, not open twice, at most \(Self.maximumStreams) streams open at once")
            }
            let mark = session.marks[id]?.sequence ?? 0
            let key = LinkStreamKey(clientID: session.clientID, stream: id)
            session.streams[index] = StreamState(key: key, received: mark, pending: LinkSinkBatch(key: key, epoch: session.epoch, firstSequence: mark + 1))
            state = .streaming(session)
            return .none
        case (.streaming(var session), .closeStream(let index)):
            state = .modifying
            // The client acknowledged everything on it before closing it, so nothing of it is pending or in
            // flight; the mark moves into the session's marks, for a reopen of the same name on this connection.
            guard index > 0, let stream = session.streams[index], stream.pending.isEmpty,
                !(session.inFlight ?? []).contains(where: { $0.stream == index })
            else {
                state = .streaming(session)
                return fail(.protocolError, "cannot close stream \(index): a number above 0 that is open, with nothing unacknowledged")
            }
            let previous = session.marks[stream.key.stream]
            session.marks[stream.key.stream] = LinkStreamMark(
                stream: stream.key.stream, sequence: stream.received,
                check: previous?.sequence == stream.received ? previous!.check : 0)
            session.streams[index] = nil
            state = .streaming(session)
            return .none
        case (_, .error):
            state = .closing(nil)
            return .close
        default:
            return fail(.protocolError, "unexpected \(frame.kindName) frame")
        }
    }

    private mutating func helloReceived(_ hello: LinkFrame.Hello) -> Action {
        guard hello.version == LinkFrame.protocolVersion else {
            return fail(.unsupportedVersion, "protocol version \(hello.version) is not supported; this server speaks \(LinkFrame.protocolVersion)")
        }
        guard LinkClientID.isValid(hello.clientID) else {
            return fail(.protocolError, "client id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        if plaintext {
            return fail(.unauthorized, "this server accepts TLS only: give the sender --tls-ca (with the CA of the server's certificate) or --tls")
        }
        if !configuration.tokens.isEmpty {
            // Every token is compared, in time independent of where they differ, so timing tells nothing.
            var match: LinkToken?
            for token in configuration.tokens where constantTimeEquals(token.secret, hello.token) { match = token }
            guard let match else { return fail(.unauthorized, "authentication failed: the token is not accepted by this server") }
            guard match.permits(hello.clientID) else {
                return fail(.unauthorized, "authentication failed: this token may not write as client id \(hello.clientID)")
            }
        }
        if configuration.requiresCertificateIdentity {
            let names = certificateNames ?? []
            guard names.contains(hello.clientID) else {
                let held = names.isEmpty ? "none" : names.joined(separator: ", ")
                return fail(.unauthorized, "client id \(hello.clientID) is not a name of this client's certificate (CN and SANs: \(held))")
            }
        }
        state = .claiming(clientID: hello.clientID)
        keepalive = hello.idleTimeoutMilliseconds > 0 ? .milliseconds(Int64(hello.idleTimeoutMilliseconds) / 3) : nil
        return .claim(clientID: hello.clientID)
    }

    private var keepalive: TimeAmount?

    /// The sink fenced earlier connections and says where the client stands.
    mutating func claimed(_ claim: LinkSinkClaim, isNewest: Bool) -> Action {
        guard case .claiming(let clientID) = state else { return .none }
        guard isNewest else { return replaced() }
        let key = LinkStreamKey(clientID: clientID)
        let mark = claim.sequence(of: "")
        let unnamed = StreamState(key: key, received: mark, pending: LinkSinkBatch(key: key, epoch: claim.epoch, firstSequence: mark + 1))
        state = .streaming(Session(clientID: clientID, epoch: claim.epoch, marks: claim.marks, streams: [0: unnamed]))
        let named = claim.marks.values.filter { !$0.stream.isEmpty }.sorted { $0.stream < $1.stream }
        return .welcome(serverID: configuration.serverID, mark: mark, streams: named, keepalive: keepalive)
    }

    /// Accepts a run of whole DATA frames: in-order sequences join their stream's pending batch, repeats
    /// are dropped, a gap or an unopened stream is a protocol error. Returns `.commit` when nothing is in
    /// flight (the batches go at once).
    mutating func dataReceived(_ frames: ByteBuffer) -> Action {
        lastAccepted = 0
        lastDuplicates = 0
        lastAcceptedBytes = 0
        guard case .streaming(var session) = state else {
            if case .awaitingHello = state { return fail(.protocolError, "DATA before HELLO") }
            if case .claiming = state { return fail(.protocolError, "DATA before WELCOME") }
            return .none
        }
        state = .modifying
        let keep = configuration.keepMessageBytes
        let newlinesAllowed = configuration.acceptsNewlines
        var accepted = 0, duplicates = 0, size = 0
        var refusal: (LinkCloseCode, String)?
        // The stream being filled, taken out of the dictionary while its frames run (most runs are one stream);
        // a plain value, not an optional, so nothing is copied per message.
        var index: UInt32 = 0
        var current = session.streams.removeValue(forKey: 0)!
        var holding = true
        frames.withUnsafeReadableBytes { bytes in
            var offset = 0
            /// Takes the frames from `offset` on while they are on `stream`; copies each new message and its
            /// newline to `target` (when bytes are kept). Returns the bytes written.
            func take(stream: UInt32, received: inout UInt64, into target: UnsafeMutableRawBufferPointer?, lengths: inout [UInt32]) -> Int {
                var written = 0
                while offset < bytes.count {
                    let frame = DataFrameLayout.Frame(bytes, at: offset)
                    guard frame.stream == stream else { break }
                    let sequence = frame.sequence
                    let payload = frame.payload
                    offset = frame.end
                    if sequence == received &+ 1 {
                        if !newlinesAllowed, payload.count > 0, memchr(payload.baseAddress!, Int32(UInt8(ascii: "\n")), payload.count) != nil {
                            refusal = (.messageRefused, "message \(sequence) contains a newline, and this server's sink stores one message per line")
                            break
                        }
                        received = sequence
                        accepted += 1
                        if let target {
                            if let source = payload.baseAddress { (target.baseAddress! + written).copyMemory(from: source, byteCount: payload.count) }
                            target[written + payload.count] = UInt8(ascii: "\n")
                            written += payload.count + 1
                            lengths.append(UInt32(payload.count))
                        }
                    } else if sequence <= received {
                        duplicates += 1
                    } else {
                        refusal = (.protocolError, "sequence \(sequence) after \(received) skips messages")
                        break
                    }
                }
                return written
            }
            while offset < bytes.count, refusal == nil {
                let stream = DataFrameLayout.Frame(bytes, at: offset).stream
                if stream != index {
                    session.streams[index] = current
                    holding = false
                    guard let next = session.streams.removeValue(forKey: stream) else {
                        refusal = (.protocolError, "DATA on stream \(stream), which was not opened")
                        return
                    }
                    current = next
                    index = stream
                    holding = true
                }
                // The stream's run of frames goes straight into its batch, through one buffer access: per
                // message, the buffer's own calls (uniqueness, capacity, exclusivity checks) cost a tenth of
                // the server's time.
                var received = current.received
                let before = accepted
                if keep {
                    // Room for every message of this stream's frames here (headers only are read): a run that
                    // interleaves many streams must not reserve the whole run for each.
                    var room = 0, next = offset
                    while next < bytes.count, case let frame = DataFrameLayout.Frame(bytes, at: next), frame.stream == stream {
                        room += frame.payloadCount + 1  // the payload and its newline
                        next = frame.end
                    }
                    size += current.pending.appendMessages(upTo: room) { target, lengths in
                        take(stream: stream, received: &received, into: target, lengths: &lengths)
                    }
                } else {
                    var none: [UInt32] = []
                    _ = take(stream: stream, received: &received, into: nil, lengths: &none)
                    current.pending.countMessages(accepted - before)
                    size += accepted - before
                }
                current.received = received
            }
        }
        if holding { session.streams[index] = current }
        session.pendingSize += size
        lastAccepted = accepted
        lastAcceptedBytes = keep ? size : 0
        lastDuplicates = duplicates
        if let refusal {
            // The refusal is final for this client, so the messages pending before it are not committed.
            state = .streaming(session)
            return fail(refusal.0, refusal.1)
        }
        let next = session.takePending()
        state = .streaming(session)
        return next.map { .commit($0) } ?? .none
    }

    /// The emptied buffers of the commit that just came back, offered before ``committed(_:)`` so the
    /// pending batches it starts reuse them.
    mutating func reuse(_ lines: [ByteBuffer]) {
        switch state {
        case .streaming(var session):
            state = .modifying
            session.spareLines = lines
            state = .streaming(session)
        case .draining(var session):
            state = .modifying
            session.spareLines = lines
            state = .draining(session)
        default:
            break
        }
    }

    /// The sink answered for the commit in flight, one outcome per batch.
    mutating func committed(_ outcomes: [LinkCommitOutcome]) -> Action {
        let stored = outcomes.allSatisfy { $0 == .stored }
        switch state {
        case .streaming(var session):
            guard stored, let acknowledgements = session.inFlight else { return replaced() }
            session.inFlight = nil
            let next = session.takePending()
            state = .streaming(session)
            return .acknowledge(acknowledgements, next: next)
        case .draining(var session):
            guard stored, let acknowledgements = session.inFlight else {
                state = .closing(nil)
                return .close
            }
            session.inFlight = nil
            session.acknowledged += acknowledgements
            state = .draining(session)
            return drainStep()
        case .closing(var session?):
            // Leaving, but an ACK the client can still read saves it a resend.
            guard stored, let acknowledgements = session.inFlight else { return .none }
            session.inFlight = nil
            state = .closing(session)
            return .acknowledge(acknowledgements, next: nil)
        default:
            return .none
        }
    }

    /// The sink failed with an error a retry cannot fix: the server is stopping.
    mutating func commitFailed(_ error: LinkSinkError) -> Action {
        switch state {
        case .closing, .closed: return .none
        default: return goAway(.shuttingDown, "the server's sink failed (\(error.message)); reconnect later")
        }
    }

    /// The peer closed its side (EOF): commit what is pending, acknowledge, close.
    mutating func inputClosed() -> Action {
        switch state {
        case .streaming(let session):
            state = .draining(session)
            return drainStep()
        case .closed:
            return .none
        default:
            state = .closed
            return .close
        }
    }

    private mutating func drainStep() -> Action {
        guard case .draining(var session) = state else { return .none }
        if session.inFlight != nil { return .none }
        if let batches = session.takePending() {
            state = .draining(session)
            return .commit(batches)
        }
        state = .closed
        return .acknowledgeAndClose(session.acknowledged)
    }

    // MARK: - Other events

    /// A newer connection claimed this client id.
    mutating func replaced() -> Action {
        let id = clientID ?? "?"
        return goAway(.replaced, "another sender took over client id \(id)")
    }

    mutating func shutdownRequested() -> Action {
        goAway(.shuttingDown, "the server is shutting down; reconnect later")
    }

    mutating func connectionRefused() -> Action {
        fail(.tooManyConnections, "the server is at its connection limit; senders are let in in turn, try again shortly")
    }

    /// Others wait for a session: leave now (what is pending is committed and acknowledged first, as on any
    /// GOAWAY) and come back later.
    mutating func yieldRequested() -> Action {
        goAway(.tooManyConnections, "the server is at its connection limit and others are waiting; reconnect shortly")
    }

    /// Nothing was read for the idle timeout. Silence while we wait for the sink is ours, not the client's.
    mutating func readIdle(timeout: TimeAmount) -> Action {
        switch state {
        case .awaitingHello, .streaming:
            if isWaitingForSink { return .none }
            return goAway(.idleTimeout, "nothing received for \(timeout.nanoseconds / 1_000_000) ms")
        default:
            return .none
        }
    }

    /// Nothing was written for the keepalive interval: while the client waits for our sink (and we do not
    /// read its PINGs), a PING from us keeps it from presuming the connection dead. Otherwise the client's own
    /// PINGs and our PONGs suffice.
    mutating func writeIdle() -> Action {
        if case .streaming = state, isWaitingForSink { return .ping }
        return .none
    }

    /// The close deadline passed without the client's EOF.
    mutating func closeDeadlinePassed() -> Action {
        state = .closed
        return .close
    }

    mutating func closed() { state = .closed }

    /// A decoding error (malformed, oversized or truncated frame).
    mutating func protocolError(_ error: LinkProtocolError) -> Action {
        if case .frameTooLarge = error.reason { return fail(.messageTooLarge, error.description) }
        return fail(.protocolError, error.description)
    }

    private mutating func goAway(_ code: LinkCloseCode, _ text: String) -> Action {
        switch state {
        case .closing, .closed: return .none
        case .streaming(let session), .draining(let session): state = .closing(session)
        default: state = .closing(nil)
        }
        return .goAway(code, text)
    }

    private mutating func fail(_ code: LinkCloseCode, _ text: String) -> Action {
        switch state {
        case .closing, .closed: return .none
        case .streaming(let session): state = .closing(session)
        default: state = .closing(nil)
        }
        return .error(code, text)
    }
}

/// Compares secrets in time independent of where they differ. Lengths are compared in full (a token with
/// 256 bytes appended must not pass), and the loop runs over the longer input either way.
func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var difference: UInt8 = x.count == y.count ? 0 : 1
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
        case .open: "OPEN"
        case .closeStream: "CLOSE"
        }
    }
}
