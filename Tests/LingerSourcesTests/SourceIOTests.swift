import LingerSources
import NIOCore
import Testing

struct SourceIOTests {
    /// A buffer read on the sources' threads comes back held by the caller alone, so writing into it (the
    /// outbox stamps sequence numbers into every batch) does not copy it. The pool's own result used to
    /// keep a second reference for a moment after waking the caller, which copied about a quarter of all
    /// batches; many round trips make that race show.
    @Test func aValueComesBackUnshared() async throws {
        let io = SourceIO(threads: 2)
        var copied = 0
        for _ in 0..<20_000 {
            var buffer = try await io.run {
                var fresh = ByteBufferAllocator().buffer(capacity: 64)
                fresh.writeInteger(UInt64(1))
                return fresh
            }
            let before = buffer.withUnsafeReadableBytes { $0.baseAddress }
            buffer.setInteger(UInt64(2), at: buffer.readerIndex)
            if buffer.withUnsafeReadableBytes({ $0.baseAddress }) != before { copied += 1 }
        }
        await io.shutdown()
        #expect(copied == 0)
    }
}
