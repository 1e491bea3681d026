import NIOPosix

/// One thread of its own for a sink whose work blocks (a file, a pipe), so that no event loop and no Swift
/// concurrency thread ever waits for a disk. The server calls a sink one call at a time, so one thread is
/// also what keeps the blocking store serial.
final class SinkThread<Store>: @unchecked Sendable {
    // Touched only on the pool's single thread (and in init, before the pool starts).
    private let store: Store
    private let pool = NIOThreadPool(numberOfThreads: 1)

    init(_ store: Store) {
        self.store = store
        pool.start()
    }

    /// Runs `body` on the sink's thread.
    func run<T: Sendable>(_ body: @escaping @Sendable (Store) throws -> T) async throws -> T {
        let store = UnsafeTransfer(store)
        return try await pool.runIfActive { try body(store.value) }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}

/// Carries a non-Sendable value to the one thread that uses it.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
