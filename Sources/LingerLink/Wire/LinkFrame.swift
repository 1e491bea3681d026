public import NIOCore

/// One frame of the link protocol: `u32 length (big-endian, of what follows) | u8 type | payload`.
///
/// See `docs/LINK-PROTOCOL.md` for every field. DATA carries the message bytes as a slice of the received
/// buffer, so decoding copies nothing.
public enum LinkFrame: Sendable, Equatable {
    /// c→s: start or resume a session.
    case hello(Hello)
    /// s→c: the resume points: the highest sequence the server has durably accepted on this client's unnamed
    /// stream (stream 0), and the marks of every named stream it knows for this client.
    ///
    /// `features` says what else this server understands (see ``LinkServerFeatures``): a server of an older
    /// build sends none, and a client then sends nothing it would refuse.
    case welcome(serverID: String, highestAccepted: UInt64, streams: [LinkStreamMark] = [], features: LinkServerFeatures = [])
    /// c→s: binds stream number `stream` (1 and up; 0 is the unnamed stream) to the stream named `id` for the
    /// rest of this connection. Its resume point is the mark WELCOME gave for `id`, or 0.
    case open(stream: UInt32, id: String)
    /// c→s: the client sends nothing more on stream number `stream` on this connection, and everything it
    /// sent there is acknowledged: the server forgets the number (its mark stays). Only to a server whose
    /// WELCOME listed ``LinkServerFeatures/streamClose``.
    case closeStream(stream: UInt32)
    /// c→s: one message on a stream.
    case data(stream: UInt32 = 0, sequence: UInt64, payload: ByteBuffer)
    /// s→c: everything on `stream` up to and including `sequence` is durably in the sink.
    case ack(stream: UInt32 = 0, sequence: UInt64)
    /// Either way: liveness probe when idle.
    case ping(token: UInt64)
    /// Either way: the answer to a ping.
    case pong(token: UInt64)
    /// Either way: "close after this"; the receiver closes its side promptly.
    case goAway(code: LinkCloseCode, text: String)
    /// Either way: a protocol or authentication error; a graceful close follows so the text arrives.
    case error(code: LinkCloseCode, text: String)

    /// The HELLO fields.
    public struct Hello: Sendable, Equatable {
        public var version: UInt16
        /// Stable across reconnects and restarts: the key of the server's dedupe state.
        public var clientID: String
        /// The shared secret, if the server asks for one (empty otherwise).
        public var token: String
        /// The client replaces a connection that receives nothing for this long (0: not said). A server that
        /// must stop reading (its sink lags) sends PINGs more often than this, so the client keeps waiting
        /// instead of reconnecting. Version 2 and later.
        public var idleTimeoutMilliseconds: UInt32

        public init(version: UInt16 = LinkFrame.protocolVersion, clientID: String, token: String, idleTimeoutMilliseconds: UInt32 = 0) {
            self.version = version
            self.clientID = clientID
            self.token = token
            self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        }
    }

    /// The protocol version this build speaks. Version 2 added the client's idle timeout to HELLO, named
    /// streams (OPEN, a stream number in DATA and ACK, the streams' marks in WELCOME).
    public static let protocolVersion: UInt16 = 2

    /// The one-byte frame types on the wire.
    enum Kind: UInt8 {
        case hello = 1, welcome = 2, data = 3, ack = 4, ping = 5, pong = 6, goAway = 7, error = 8, open = 9, closeStream = 10
    }
}

/// What a server understands beyond version 2's frames, listed at the end of its WELCOME (`u32` flags). A
/// server built before them sends no flags, and a client reads that as none: the protocol version stays 2,
/// so old senders and old servers still work with new ones.
public struct LinkServerFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CLOSE (type 10) is accepted: a client may forget streams it finished, so a long run never reaches
    /// the server's limit of streams open on one connection.
    public static let streamClose = LinkServerFeatures(rawValue: 1 << 0)
    /// Each mark's content digest follows the flags (see ``LinkStreamMark/digest``).
    public static let digests = LinkServerFeatures(rawValue: 1 << 1)

    /// What this build's server sends.
    public static let current: LinkServerFeatures = [.streamClose, .digests]
}

/// Where the server stands on one named stream of a client.
public struct LinkStreamMark: Sendable, Hashable {
    /// The stream's name (1-128 characters of `A-Z a-z 0-9 . _ : -`).
    public var stream: String
    /// The highest sequence durably stored.
    public var sequence: UInt64
    /// The FNV-1a 64-bit fingerprint of the message at `sequence` (0 when unknown), so a sender can check
    /// that its input really is the content the server holds before it skips that much of it.
    public var check: UInt64
    /// What the stream holds, as a whole: the CRC-32C of every stored message followed by a newline, in
    /// order, in the low 32 bits, and the byte count of those messages and newlines (mod 2^32) in the high
    /// 32 bits; 0 when unknown (a sink that keeps no bytes, a mark stored by an older build). With it a
    /// sender proves that its input's first `sequence` lines are exactly what the server holds, instead of
    /// comparing one line (see ``LinkContentDigest``).
    public var digest: UInt64

    public init(stream: String, sequence: UInt64, check: UInt64, digest: UInt64 = 0) {
        self.stream = stream
        self.sequence = sequence
        self.check = check
        self.digest = digest
    }
}

/// Why a GOAWAY or ERROR was sent. A struct over a raw value so new codes can be added compatibly.
public struct LinkCloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The server is shutting down or rebalancing; reconnect (elsewhere) after a backoff.
    public static let shuttingDown = LinkCloseCode(rawValue: 1)
    /// Another connection took over this client id.
    public static let replaced = LinkCloseCode(rawValue: 2)
    /// Wrong or missing token. The client stops reconnecting: retrying cannot help.
    public static let unauthorized = LinkCloseCode(rawValue: 10)
    /// A malformed or unexpected frame.
    public static let protocolError = LinkCloseCode(rawValue: 11)
    /// The protocol version is not supported.
    public static let unsupportedVersion = LinkCloseCode(rawValue: 12)
    /// The server is at its connection limit; try again later.
    public static let tooManyConnections = LinkCloseCode(rawValue: 13)
    /// Nothing was received within the idle timeout.
    public static let idleTimeout = LinkCloseCode(rawValue: 14)
    /// The sink could not store data and the server is stopping.
    public static let sinkFailure = LinkCloseCode(rawValue: 15)
    /// A message the sink cannot store as sent (a line sink and a message holding a newline).
    public static let messageRefused = LinkCloseCode(rawValue: 16)
    /// A frame longer than the server's limit.
    public static let messageTooLarge = LinkCloseCode(rawValue: 17)

    /// Whether reconnecting can help. Only conditions that pass (a server restarting, full, or slow) are
    /// retried; a refusal that the same bytes would earn again (authentication, version, a malformed or
    /// oversized frame, a refused message, another sender owning the client id) is final.
    public var isRetryable: Bool {
        self == .shuttingDown || self == .tooManyConnections || self == .idleTimeout || self == .sinkFailure
    }

    /// Whether the refusal is of the client's handshake (its token or version, checked in HELLO before any
    /// data), which is the server's own configuration: another server of a list may accept the same client.
    /// A refusal of the data, or another sender owning the client id, would be the same at every server.
    public var refusesTheHandshake: Bool {
        self == .unauthorized || self == .unsupportedVersion
    }

    public var description: String {
        switch self {
        case .shuttingDown: "shutting down"
        case .replaced: "replaced by a newer connection"
        case .unauthorized: "unauthorized"
        case .protocolError: "protocol error"
        case .unsupportedVersion: "unsupported version"
        case .tooManyConnections: "too many connections"
        case .idleTimeout: "idle timeout"
        case .sinkFailure: "sink failure"
        case .messageRefused: "message refused"
        case .messageTooLarge: "message too large"
        default: "code \(rawValue)"
        }
    }
}
