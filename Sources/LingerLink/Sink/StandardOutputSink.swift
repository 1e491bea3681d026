#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Writes accepted messages to standard output, one per line.
///
/// What a pipe can promise: an acknowledgement means the line was written into the pipe (or terminal), not
/// that the reader processed it. High-water marks live in memory, so exactly-once holds while the server
/// runs, not across its restarts. When the reader goes away (EPIPE) nothing more can be written: the commit
/// fails with an error that is not retryable, the server stops, and nothing past the last complete write
/// was acknowledged. A reader that is merely slow is backpressure: the server stops reading from its clients
/// until the pipe drains.
public final class StandardOutputSink: LinkSink {
    private final class Store {
        var book = MarkBook()
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
    }

    private let thread: SinkThread<Store>

    /// - Parameter fd: the descriptor to write (standard output unless a test says otherwise).
    public init(fd: Int32 = 1) { thread = SinkThread(Store(fd: fd)) }

    public func claim(clientID: String) async throws -> LinkSinkClaim {
        try await thread.run { $0.book.claim(clientID: clientID) }
    }

    public func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] {
        try await thread.run { store in
            let outcomes = store.book.outcomes(for: batches)
            for (batch, outcome) in zip(batches, outcomes) where outcome == .stored {
                try batch.lines.withUnsafeReadableBytes { try Self.writeAll(store.fd, $0) }
                store.book.record(batch)
            }
            return outcomes
        }
    }

    public var acceptsNewlines: Bool { false }

    public func close() async throws { await thread.shutdown() }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    // A non-blocking stdout (set so by whoever started us): wait until it drains, not spin.
                    var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, -1)
                    continue
                }
                let code = errno
                let what = code == EPIPE ? "standard output was closed by its reader" : "cannot write standard output"
                // A torn line may have reached the pipe; nothing after the last whole batch is acknowledged.
                throw LinkSinkError("\(what): \(String(cString: strerror(code)))", isRetryable: code != EPIPE && code != EBADF)
            }
            offset += n
        }
    }
}
