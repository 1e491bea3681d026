import NIOCore

/// Messages not yet acknowledged, stored as ready-to-send DATA frames in large chunks, so handing them to
/// the socket is one write of many frames (batching is what decides throughput), and resending after a
/// reconnect is a slice from the first unacknowledged frame.
struct Outbox {
    /// The stream number stamped into every frame (0: the unnamed stream).
    let stream: UInt32

    init(stream: UInt32 = 0) { self.stream = stream }

    struct Chunk {
        var firstSequence: UInt64
        var buffer: ByteBuffer
        /// Where each frame starts, relative to the chunk's first frame.
        var offsets: [Int32]
        var createdAt: ContinuousClock.Instant
        var lastSequence: UInt64 { firstSequence + UInt64(offsets.count) - 1 }
    }

    private(set) var chunks: [Chunk] = []
    /// The sequence the next appended message gets.
    private(set) var nextSequence: UInt64 = 1
    /// Everything up to here is acknowledged.
    private(set) var acknowledged: UInt64 = 0
    /// Everything up to here has been handed to the current connection.
    private(set) var sentThrough: UInt64 = 0
    /// Bytes of unacknowledged frames.
    private(set) var bytes = 0

    var count: Int { Int(nextSequence - 1 - acknowledged) }
    var isEmpty: Bool { count == 0 }
    var lastSequence: UInt64 { nextSequence - 1 }
    var oldestCreatedAt: ContinuousClock.Instant? { chunks.first?.createdAt }

    /// Appends a pre-encoded batch as one chunk, stamping consecutive sequence numbers into its frames.
    /// The batch is consumed so that its buffer is stamped in place: a copy here would touch every byte
    /// again and, in a short-lived sender, fault in fresh pages for all of it.
    /// - Returns: the sequence of the batch's last message.
    @discardableResult
    mutating func append(batch: consuming LinkBatch) -> UInt64 {
        guard !batch.isEmpty else { return lastSequence }
        var sequence = nextSequence
        let stream = self.stream
        // One pass over the frames' bytes, numbering them in place.
        batch.buffer.withUnsafeMutableReadableBytes { bytes in
            for offset in batch.offsets {
                DataFrameLayout.stamp(stream: stream, sequence: sequence, into: bytes, at: Int(offset))
                sequence += 1
            }
        }
        bytes += batch.buffer.readableBytes
        chunks.append(Chunk(firstSequence: nextSequence, buffer: batch.buffer, offsets: batch.offsets, createdAt: .now))
        nextSequence = sequence
        return sequence - 1
    }

    /// Drops everything up to `sequence`. Returns how many messages that newly acknowledged.
    @discardableResult
    mutating func acknowledge(through sequence: UInt64) -> Int {
        let through = min(sequence, lastSequence)
        guard through > acknowledged else { return 0 }
        let newly = Int(through - acknowledged)
        while let first = chunks.first, first.lastSequence <= through {
            bytes -= first.buffer.readableBytes - frameOffset(first, max(acknowledged + 1, first.firstSequence))
            chunks.removeFirst()
        }
        if let first = chunks.first, through >= first.firstSequence {
            // Partly acknowledged chunk: count the acknowledged frames' bytes out; the chunk goes when its last frame does.
            bytes -= frameOffset(first, through + 1) - frameOffset(first, max(acknowledged + 1, first.firstSequence))
        }
        acknowledged = through
        sentThrough = max(sentThrough, through)
        return newly
    }

    /// After a (re)connect: the server holds everything through `highest`. Messages after it will be
    /// (re)sent from the start of the next ``takeUnsent()``. A server ahead of us (a restarted client with
    /// the same id, on its first session) moves numbering past its mark; the client checks beforehand that
    /// a server ahead of what it sent is not another sender's doing.
    /// Returns how many messages the server's mark newly acknowledged (their ACK was lost with the old
    /// connection: they count as acknowledged like any other) and how many will go out again.
    mutating func resume(serverHighest highest: UInt64) -> (acknowledged: Int, resent: Int) {
        if highest >= nextSequence {
            nextSequence = highest + 1
            chunks.removeAll()
            bytes = 0
            acknowledged = highest
            sentThrough = highest
            return (0, 0)
        }
        let newly = acknowledge(through: highest)
        let resent = sentThrough > acknowledged ? Int(sentThrough - acknowledged) : 0
        sentThrough = acknowledged
        return (newly, resent)
    }

    /// The frames not yet handed to the current connection, as slices of the chunks (no copy).
    mutating func takeUnsent() -> [ByteBuffer] {
        guard sentThrough < lastSequence else { return [] }
        var slices: [ByteBuffer] = []
        for chunk in chunks where chunk.lastSequence > sentThrough {
            let from = max(sentThrough + 1, chunk.firstSequence)
            let start = frameOffset(chunk, from)
            slices.append(chunk.buffer.getSlice(at: chunk.buffer.readerIndex + start, length: chunk.buffer.readableBytes - start)!)
        }
        sentThrough = lastSequence
        return slices
    }

    private func frameOffset(_ chunk: Chunk, _ sequence: UInt64) -> Int {
        let index = Int(sequence - chunk.firstSequence)
        return index >= chunk.offsets.count ? chunk.buffer.readableBytes : Int(chunk.offsets[index])
    }
}
