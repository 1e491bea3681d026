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
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
