import NIOPosix
import Synchronization

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
        let handOff = HandOff<T>()
        try await pool.runIfActive { handOff.put(try body()) }
        return handOff.take()
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}

/// One value moved from one thread or task to another without a second reference staying behind: a
/// `ByteBuffer` still referenced elsewhere is copied by the next write into it, and the outbox writes
/// sequence numbers into every batch. The hand-over itself (a continuation's resume, an `await`) orders
/// the write before the read; the lock is there so that the box needs no unchecked claim to be `Sendable`.
package final class HandOff<T: Sendable>: Sendable {
    private let slot: Mutex<T?>

    package init(_ value: T? = nil) { slot = Mutex(value) }

    package func put(_ value: T) { slot.withLock { $0 = value } }

    /// Calls `body` with the value while it stays in the box (lent, not copied out).
    package func withValue<Result: Sendable>(_ body: (T) throws -> Result) throws -> Result {
        try slot.withLock { value in try body(value!) }
    }

    /// The value, leaving the box empty.
    package func take() -> T { slot.withLock { $0.take()! } }
}
