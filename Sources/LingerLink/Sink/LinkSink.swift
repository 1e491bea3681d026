public import NIOCore

/// Where a server puts accepted messages, and where it keeps each client's high-water mark.
///
/// Exactly-once holds as long as the high-water mark is as durable as the data: a sink stores both in one
/// step (``store(clientID:through:records:)``), and the server acknowledges only after that step returns.
/// Calls are serialized by the server (one at a time), so implementations need no locking of their own.
public protocol LinkSink: AnyObject, Sendable {
    /// The highest sequence stored for `clientID` (0 for a client never seen).
    func highestAccepted(clientID: String) -> UInt64
    /// Stores `records` — each accepted message followed by a newline, in acceptance order — and records
    /// `through` as the client's new high-water mark, durably per the sink's policy.
    func store(clientID: String, through sequence: UInt64, records: ByteBuffer) throws
    /// Whether the sink needs the message bytes (the discard sink does not, so the server skips copying).
    var needsRecords: Bool { get }
    /// Flushes and closes files; called once when the server stops.
    func close() throws
}

/// How often a file sink forces data to disk.
public enum FsyncPolicy: Sendable, Hashable {
    /// fsync before every acknowledgement: an ack means the data survives power loss.
    case everyBatch
    /// fsync at most once per interval: an ack means the data is in the OS (survives a crash of the server
    /// process, not of the machine) until the next fsync.
    case interval(Duration)
    /// Never fsync: the OS writes back when it wants.
    case none
}

/// Keeps only high-water marks: for benchmarks and for testing the protocol without I/O.
public final class DiscardSink: LinkSink, @unchecked Sendable {
    // The server serializes calls (see LinkSink), so plain storage is safe.
    private var marks: [String: UInt64] = [:]
    public init() {}
    public func highestAccepted(clientID: String) -> UInt64 { marks[clientID] ?? 0 }
    public func store(clientID: String, through sequence: UInt64, records: ByteBuffer) { marks[clientID] = sequence }
    public var needsRecords: Bool { false }
    public func close() {}
}
