/// Where a server puts accepted messages, and where it keeps each client's position.
///
/// Exactly-once holds as long as a stream's high-water mark is as durable as its data: a sink stores both in
/// one commit, and the server acknowledges a batch only after the commit that holds it returned.
///
/// The server calls a sink from one task at a time, in arrival order (claims and commits never overlap), so an
/// implementation needs no locking of its own for that. Sink calls never run on an event loop: a sink that
/// blocks (a file, a pipe) hops to its own thread, the way ``FileSink`` does.
///
/// **Fencing.** Only one connection speaks for a client id. A new connection first *claims* the id: the sink
/// hands out a new epoch, larger than every earlier one, and every batch carries the epoch of the connection
/// that received it. ``commit(_:)`` refuses, inside the same step that would store it, a batch whose epoch is
/// no longer the client's newest, so a connection that was taken over can never append after its successor
/// resumed. A sink shared by several servers (a database) keeps the epoch where all of them see it.
///
/// A custom sink:
/// ```swift
/// final class PrintingSink: LinkSink {
///     let marks = Mutex<[LinkStreamKey: UInt64]>([:])
///     let epochs = Mutex<[String: UInt64]>([:])
///     func claim(clientID: String) async throws -> LinkSinkClaim { … }
///     func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] { … }
///     func close() async throws {}
/// }
/// ```
public protocol LinkSink: AnyObject, Sendable {
    /// Fences every earlier connection of `clientID` and returns the new epoch with the high-water mark of
    /// each of its streams (streams never seen are absent: their mark is 0).
    func claim(clientID: String) async throws -> LinkSinkClaim

    /// Stores `batches` as one group: everything that is stored is durable (per the sink's policy) when this
    /// returns. Returns one outcome per batch, in order. Throws only when nothing was stored; a
    /// ``LinkSinkError`` says whether retrying can help.
    func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome]

    /// Whether batches must carry the message bytes (the discard sink needs only sequence numbers).
    var needsMessageBytes: Bool { get }

    /// Whether a message may contain a newline. Line-oriented sinks (file, stdout) keep one message per line,
    /// so a message with a newline would read back as two: they refuse it instead.
    var acceptsNewlines: Bool { get }

    /// Reopens the output after an external rotation (SIGHUP), between two commits. Returns what happened,
    /// for the log, or nil when the sink has nothing to reopen.
    func reopen() async throws -> String?

    /// Flushes and closes; called once, after the last commit.
    func close() async throws
}

extension LinkSink {
    public var needsMessageBytes: Bool { true }
    public var acceptsNewlines: Bool { true }
    public func reopen() async throws -> String? { nil }
}

/// One stream of one client: the key of a high-water mark.
public struct LinkStreamKey: Sendable, Hashable, CustomStringConvertible {
    public var clientID: String
    /// `""` for a client's single unnamed stream.
    public var stream: String

    public init(clientID: String, stream: String = "") {
        self.clientID = clientID
        self.stream = stream
    }

    public var description: String { stream.isEmpty ? clientID : "\(clientID)/\(stream)" }
}

/// The answer to ``LinkSink/claim(clientID:)``.
public struct LinkSinkClaim: Sendable, Equatable {
    /// Larger than every epoch handed out before for this client id.
    public var epoch: UInt64
    /// Where each stream of this client stands, by stream name (`""` for the unnamed stream).
    public var marks: [String: LinkStreamMark]

    public init(epoch: UInt64, marks: [String: LinkStreamMark]) {
        self.epoch = epoch
        self.marks = marks
    }

    /// A claim from bare sequence numbers (no fingerprints).
    public init(epoch: UInt64, sequences: [String: UInt64]) {
        self.epoch = epoch
        self.marks = sequences.reduce(into: [:]) { $0[$1.key] = LinkStreamMark(stream: $1.key, sequence: $1.value, check: 0) }
    }

    /// The highest sequence stored on `stream` (0 for a stream never seen).
    public func sequence(of stream: String) -> UInt64 { marks[stream]?.sequence ?? 0 }
}

/// What happened to one batch of a commit.
public enum LinkCommitOutcome: Sendable, Equatable {
    /// Durably stored; the stream's mark is now the batch's last sequence.
    case stored
    /// Not stored: a newer connection claimed the client id (its epoch is stale), or the batch does not start
    /// right after the stream's mark. The connection that sent it must stop.
    case fenced
}

/// A sink failure, with whether a retry can fix it.
public struct LinkSinkError: Error, Sendable, CustomStringConvertible {
    /// A full disk or an I/O error may clear up (space freed, a filesystem grown): the server keeps its
    /// clients, stops reading from them, and retries with backoff. A closed pipe or a broken configuration
    /// will not: the server stops.
    public var isRetryable: Bool
    public var message: String

    public init(_ message: String, isRetryable: Bool) {
        self.message = message
        self.isRetryable = isRetryable
    }

    public var description: String { message }
}
