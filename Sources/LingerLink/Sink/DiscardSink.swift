import Synchronization

/// Keeps only high-water marks: for benchmarks and for testing the protocol without I/O.
public final class DiscardSink: LinkSink {
    private let book = Mutex(MarkBook())

    public init() {}

    public func claim(clientID: String) async throws -> LinkSinkClaim {
        book.withLock { $0.claim(clientID: clientID) }
    }

    public func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] {
        book.withLock { book in
            let outcomes = book.outcomes(for: batches)
            for (batch, outcome) in zip(batches, outcomes) where outcome == .stored { book.record(batch) }
            return outcomes
        }
    }

    public var needsMessageBytes: Bool { false }

    public func close() async throws {}
}
