/// High-water marks and epochs kept in memory: the part of fencing every sink in one process shares.
///
/// A sink that lives in one server process (file, stdout, discard) keeps epochs here only: every connection
/// of an earlier run of the server died with it, so an epoch never needs to outlive the process. A sink
/// shared by several servers keeps epochs where all of them see them (issue: the PostgreSQL sink).
struct MarkBook: Sendable {
    private(set) var marks: [LinkStreamKey: UInt64] = [:]
    private var epochs: [String: UInt64] = [:]

    init(marks: [LinkStreamKey: UInt64] = [:]) { self.marks = marks }

    /// A new epoch for `clientID`, with the marks of its streams.
    mutating func claim(clientID: String) -> LinkSinkClaim {
        let epoch = (epochs[clientID] ?? 0) + 1
        epochs[clientID] = epoch
        var streams: [String: UInt64] = [:]
        for (key, mark) in marks where key.clientID == clientID { streams[key.stream] = mark }
        return LinkSinkClaim(epoch: epoch, marks: streams)
    }

    /// Whether `batch` may be stored now: its connection is the newest for the client, and it continues
    /// the stream exactly.
    func admits(_ batch: LinkSinkBatch) -> Bool {
        epochs[batch.key.clientID] == batch.epoch && batch.firstSequence == (marks[batch.key] ?? 0) + 1
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
        marks[batch.key] = batch.lastSequence
    }

    mutating func set(_ key: LinkStreamKey, to mark: UInt64) { marks[key] = mark }
}
