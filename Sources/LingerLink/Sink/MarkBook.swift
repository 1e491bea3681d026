/// High-water marks and epochs kept in memory: the part of fencing every sink in one process shares.
///
/// A sink that lives in one server process (file, stdout, discard) keeps epochs here only: every connection
/// of an earlier run of the server died with it, so an epoch never needs to outlive the process. A sink
/// shared by several servers keeps epochs where all of them see them (issue: the PostgreSQL sink).
struct MarkBook: Sendable {
    struct Mark: Sendable, Equatable {
        var sequence: UInt64
        var check: UInt64
        /// The stream's ``LinkContentDigest`` through `sequence` (0: unknown).
        var digest: UInt64 = 0

        /// The mark after `batch`, which continues this one.
        func after(_ batch: LinkSinkBatch) -> Mark {
            Mark(sequence: batch.lastSequence, check: batch.lastMessageCheck, digest: batch.digest(continuing: digest, from: sequence))
        }

        static let start = Mark(sequence: 0, check: 0)
    }

    private(set) var marks: [LinkStreamKey: Mark] = [:]
    private var epochs: [String: UInt64] = [:]

    init(marks: [LinkStreamKey: Mark] = [:]) { self.marks = marks }

    /// A new epoch for `clientID`, with the marks of its streams.
    mutating func claim(clientID: String) -> LinkSinkClaim {
        let epoch = (epochs[clientID] ?? 0) + 1
        epochs[clientID] = epoch
        var streams: [String: LinkStreamMark] = [:]
        for (key, mark) in marks where key.clientID == clientID {
            streams[key.stream] = LinkStreamMark(stream: key.stream, sequence: mark.sequence, check: mark.check, digest: mark.digest)
        }
        return LinkSinkClaim(epoch: epoch, marks: streams)
    }

    /// Where a stream stands (the start when it holds nothing).
    func mark(_ key: LinkStreamKey) -> Mark { marks[key] ?? .start }

    /// The highest sequence stored on a stream.
    func sequence(_ key: LinkStreamKey) -> UInt64 { marks[key]?.sequence ?? 0 }

    /// Whether `batch` may be stored now: its connection is the newest for the client, and it continues
    /// the stream exactly.
    func admits(_ batch: LinkSinkBatch) -> Bool {
        epochs[batch.key.clientID] == batch.epoch && batch.firstSequence == sequence(batch.key) + 1
    }

    /// Decides each batch of a group in order (two batches of one stream in a group must follow each other).
    /// The group's own moves are kept aside, not in a copy of the book: copying every mark per commit cost
    /// as much as the commit with thousands of streams.
    func outcomes(for batches: [LinkSinkBatch]) -> [LinkCommitOutcome] {
        var moved: [LinkStreamKey: UInt64] = [:]
        return batches.map { batch in
            guard !batch.isEmpty else { return .stored }
            guard epochs[batch.key.clientID] == batch.epoch, batch.firstSequence == (moved[batch.key] ?? sequence(batch.key)) + 1
            else { return .fenced }
            moved[batch.key] = batch.lastSequence
            return .stored
        }
    }

    /// The marks after storing `batches` (admitted, in order), for the streams they move.
    func marks(after batches: [LinkSinkBatch]) -> [LinkStreamKey: Mark] {
        var moved: [LinkStreamKey: Mark] = [:]
        for batch in batches where !batch.isEmpty { moved[batch.key] = (moved[batch.key] ?? mark(batch.key)).after(batch) }
        return moved
    }

    /// Takes the marks ``marks(after:)`` computed, once the batches are stored.
    mutating func apply(_ moved: [LinkStreamKey: Mark]) {
        for (key, mark) in moved { marks[key] = mark }
    }

    mutating func record(_ batch: LinkSinkBatch) {
        apply(marks(after: [batch]))
    }
}
