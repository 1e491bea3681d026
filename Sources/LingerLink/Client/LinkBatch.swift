public import NIOCore

/// Messages encoded as DATA frames before they reach the client's outbox, so the expensive part — copying
/// bytes into frames — happens outside the client's lock; adding the batch then only stamps sequence
/// numbers into the frames. `linger send` fills one batch per megabyte of input.
public struct LinkBatch: Sendable {
    @usableFromInline var buffer: ByteBuffer
    @usableFromInline var offsets: [Int32]

    /// An empty batch with room for about `bytes` bytes of frames.
    public init(capacity bytes: Int = 64 * 1024) {
        buffer = ByteBufferAllocator().buffer(capacity: bytes)
        offsets = []
        offsets.reserveCapacity(bytes / 32)
    }

    /// Appends one message; its sequence number is assigned when the batch is sent.
    @inlinable
    public mutating func append(_ payload: some Collection<UInt8>) {
        offsets.append(Int32(buffer.readableBytes))
        buffer.writeDataFrame(sequence: 0, payload: payload)
    }

    /// Appends one message from raw bytes (the fast path).
    @inlinable
    public mutating func append(_ payload: UnsafeRawBufferPointer) {
        offsets.append(Int32(buffer.readableBytes))
        buffer.writeDataFrame(sequence: 0, payload: payload)
    }

    /// Calls `body` with each message's bytes, in place in the frames (no copy).
    public func forEachMessage(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try buffer.withUnsafeReadableBytes { bytes in
            for offset in offsets {
                try body(DataFrameLayout.Frame(bytes, at: Int(offset)).payload)
            }
        }
    }

    /// Each message's bytes, copied out of the frames.
    public var payloads: [[UInt8]] {
        buffer.withUnsafeReadableBytes { bytes in
            offsets.map { Array(DataFrameLayout.Frame(bytes, at: Int($0)).payload) }
        }
    }

    /// Messages in the batch.
    public var count: Int { offsets.count }
    /// Bytes of frames in the batch.
    public var byteCount: Int { buffer.readableBytes }
    public var isEmpty: Bool { offsets.isEmpty }
}
