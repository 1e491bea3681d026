import NIOConcurrencyHelpers
import NIOPosix

/// Threads of their own for reading inputs, so that no Swift concurrency thread (two here) ever blocks on a
/// disk or a pipe. Every blocking read, stat and open of the sources goes through ``run(_:)``.
public final class SourceIO: Sendable {
    private let pool: NIOThreadPool

    /// - Parameter threads: how many reads may block at once (one per input is plenty).
    public init(threads: Int = 2) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
    }

    /// Runs blocking work on the sources' threads.
    ///
    /// The result comes back through a box the caller empties, not through the pool's own result: the pool
    /// thread drops its copy of a returned value only after resuming the caller, so a `ByteBuffer` handed
    /// back that way was still shared for a moment, and stamping sequence numbers into it (the outbox does,
    /// in place) copied a quarter of all batches.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let result = NIOLockedValueBox<T?>(nil)
        try await pool.runIfActive {
            let value = try body()
            result.withLockedValue { $0 = value }
        }
        return result.withLockedValue { $0.take()! }
    }

    /// Buffers for reads, shared by every input: one per read in progress, not one per file, so thousands of
    /// followed files that are idle hold none (a 256 KiB buffer per file was 470 MiB at 1,500 files).
    private let spare = NIOLockedValueBox<[[UInt8]]>([])

    /// Runs `body` with a read buffer of at least `count` bytes (call it on the sources' threads).
    public func withScratch<T>(_ count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
        var buffer = spare.withLockedValue { $0.popLast() } ?? []
        if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
        defer {
            let done = buffer
            spare.withLockedValue { if $0.count < 8 { $0.append(done) } }
        }
        return try buffer.withUnsafeMutableBytes { try body($0) }
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
