/// High-water marks and epochs kept in memory: the part of fencing every sink in one process shares.
///
/// A sink that lives in one server process (file, stdout, discard) keeps epochs here only: every connection
/// of an earlier run of the server died with it, so an epoch never needs to outlive the process. A sink
/// shared by several servers keeps epochs where all of them see them (issue: the PostgreSQL sink).
struct MarkBook: Sendable {
    struct Mark: Sendable, Equatable {
        var sequence: UInt64
        var check: UInt64
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
            streams[key.stream] = LinkStreamMark(stream: key.stream, sequence: mark.sequence, check: mark.check)
        }
        return LinkSinkClaim(epoch: epoch, marks: streams)
    }

    /// The highest sequence stored on a stream.
    func sequence(_ key: LinkStreamKey) -> UInt64 { marks[key]?.sequence ?? 0 }

    /// Whether `batch` may be stored now: its connection is the newest for the client, and it continues
    /// the stream exactly.
    func admits(_ batch: LinkSinkBatch) -> Bool {
        epochs[batch.key.clientID] == batch.epoch && batch.firstSequence == sequence(batch.key) + 1
    }

    /// Decides each batch of a group in order (two batches of one stream in a group must follow each other).
    func outcomes(for batches: [LinkSinkBatch]) -> [LinkCommitOutcome] {
        var book = self
        return batches.map { batch in
            guard !batch.isEmpty, book.admits(batch) else { return batch.isEmpty ? .stored : .fenced }
            book.record(batch)
            return .stored
        }
    }

    mutating func record(_ batch: LinkSinkBatch) {
        guard !batch.isEmpty else { return }
        marks[batch.key] = Mark(sequence: batch.lastSequence, check: batch.lastMessageCheck)
    }
}
