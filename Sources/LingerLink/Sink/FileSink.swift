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

/// Appends accepted messages to a file, one per line, and proves what it wrote in a state log beside it
/// (`PATH.linger-state`, see `docs/LINK-PROTOCOL.md`), so a restarted server resumes exactly where it
/// acknowledged.
///
/// - A commit writes every pending batch of every client with one write, then one record per batch to the
///   state log, then (per ``FsyncPolicy``) one fsync of each: group commit.
/// - A failed write or fsync (a full disk) cuts both files back to the last commit before anything else is
///   written, and the error is retryable: the server waits and tries again, and no client reconnects.
/// - Opening never truncates bytes linger did not write: a non-empty file without a state log is refused
///   unless adopted, a state log that does not match the file is refused, and only a tail that no record
///   covers (a commit torn by a crash) is cut, with a note saying how many bytes.
/// - Messages are lines, so a message holding a newline is refused (``acceptsNewlines`` is false).
///
/// Blocking I/O runs on the sink's own thread, never on an event loop.
public final class FileSink: LinkSink {
    public let path: String
    /// What opening had to do, for the server's log: a torn tail cut, content adopted.
    public let openingNotes: [String]
    private let thread: SinkThread<FileSinkStore>

    /// Opens (creating if needed) the data file and its state log.
    /// - Parameters:
    ///   - adoptExisting: keep a non-empty file that has no state log as if linger had written it.
    /// - Throws: ``LinkSinkError`` naming the file, what is wrong and what to do.
    ///   - rotation: built-in rotation by size or age (off by default; logrotate with SIGHUP works too).
    public init(path: String, policy: FsyncPolicy = .everyBatch, adoptExisting: Bool = false, rotation: OutputRotation = OutputRotation()) throws {
        let store = try FileSinkStore(path: path, policy: policy, adoptExisting: adoptExisting, rotation: rotation)
        self.path = path
        self.openingNotes = store.openingNotes
        thread = SinkThread(store)
    }

    init(store: FileSinkStore) {
        path = store.path
        openingNotes = store.openingNotes
        thread = SinkThread(store)
    }

    public func claim(clientID: String) async throws -> LinkSinkClaim {
        try await thread.run { $0.claim(clientID: clientID) }
    }

    public func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] {
        try await thread.run { try $0.commit(batches) }
    }

    public var acceptsNewlines: Bool { false }

    /// Continues in a new file at the path after it was renamed (logrotate's `create` and SIGHUP).
    public func reopen() async throws -> String? {
        try await thread.run { try $0.reopen() }
    }

    public func close() async throws {
        _ = try? await thread.run { $0.close() }
        await thread.shutdown()
    }
}
