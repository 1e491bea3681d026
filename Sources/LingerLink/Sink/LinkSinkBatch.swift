public import NIOCore

/// Consecutive messages of one stream from one connection, stored or refused as a unit.
///
/// The bytes are kept the way line-oriented sinks write them — every message followed by a newline, all in
/// one buffer — so a file sink writes a batch with one call; ``messages`` gives each message's own bytes,
/// with its sequence number, to any other kind of sink.
public struct LinkSinkBatch: Sendable {
    public var key: LinkStreamKey
    /// The epoch of the connection that received the batch (see ``LinkSink``).
    public var epoch: UInt64
    /// The sequence of the first message; the rest follow without gaps.
    public var firstSequence: UInt64
    /// Every message followed by `\n`. Empty when the sink does not need the bytes.
    public private(set) var lines: ByteBuffer
    /// The length of each message (without its newline).
    public private(set) var lengths: [UInt32]
    /// How many messages, when lengths are not kept (a sink that needs no bytes).
    private var countWithoutBytes: Int

    public init(key: LinkStreamKey, epoch: UInt64, firstSequence: UInt64, lines: ByteBuffer = ByteBuffer(), lengths: [UInt32] = []) {
        self.key = key
        self.epoch = epoch
        self.firstSequence = firstSequence
        self.lines = lines
        self.lengths = lengths
        self.countWithoutBytes = 0
    }

    /// Messages in the batch.
    public var count: Int { lengths.isEmpty ? countWithoutBytes : lengths.count }
    public var isEmpty: Bool { count == 0 }
    /// The sequence of the last message (one before ``firstSequence`` when empty).
    public var lastSequence: UInt64 { firstSequence &+ UInt64(count) &- 1 }

    /// Each message with its sequence number.
    public var messages: some Sequence<(sequence: UInt64, bytes: ByteBuffer)> {
        var offset = lines.readerIndex
        var sequence = firstSequence
        let lines = self.lines
        return lengths.lazy.map { length in
            defer {
                offset += Int(length) + 1
                sequence += 1
            }
            return (sequence, lines.getSlice(at: offset, length: Int(length))!)
        }
    }

    /// The FNV-1a 64-bit fingerprint of the last message (0 when the bytes are not kept): stored with the
    /// mark, so a sender can check its input against what the server holds.
    public var lastMessageCheck: UInt64 {
        guard let last = lengths.last else { return 0 }
        let start = lines.readerIndex + lines.readableBytes - 1 - Int(last)
        return lines.withUnsafeReadableBytes { bytes in
            LinkFingerprint.fnv1a(UnsafeRawBufferPointer(rebasing: bytes[(start - lines.readerIndex)..<(start - lines.readerIndex + Int(last))]))
        }
    }

    /// The stream's ``LinkContentDigest`` after this batch, given the digest at the mark before it
    /// (`sequence`, the batch's first sequence minus one). 0 (unknown) when the bytes are not kept, or when
    /// the digest before was unknown: a digest is only worth anything if it covers the whole stream.
    public func digest(continuing digest: UInt64, from sequence: UInt64) -> UInt64 {
        guard !lengths.isEmpty else { return 0 }
        return lines.withUnsafeReadableBytes { LinkContentDigest.continuing(digest, at: sequence, withLines: $0) }
    }

    /// Appends messages the server's receive path copies in itself: `body` gets room for at most `bytes` more
    /// bytes (each message followed by `\n`) and the lengths to extend, and returns the bytes it wrote.
    /// One buffer access for a run of messages: the receive path runs for every message, and the buffer's
    /// own calls check uniqueness, capacity and exclusive access each time.
    mutating func appendMessages(upTo bytes: Int, _ body: (UnsafeMutableRawBufferPointer, inout [UInt32]) -> Int) -> Int {
        var lengths = self.lengths
        self.lengths = []
        defer { self.lengths = lengths }
        return lines.writeWithUnsafeMutableBytes(minimumWritableBytes: bytes) { target in body(target, &lengths) }
    }

    /// Counts messages whose bytes are not kept (a sink that needs none).
    mutating func countMessages(_ count: Int) {
        countWithoutBytes += count
    }

    /// Gives up the batch's buffer, emptied, for the connection's next batch. Reusing it spares a fresh
    /// allocation per commit, and with it the kernel zeroing every page of it again: with a file sink that
    /// zeroing was a fifth of the server's CPU. The storage is kept only when nothing else holds it
    /// (otherwise `clear()` starts a new one).
    mutating func takeLinesForReuse() -> ByteBuffer {
        var taken = ByteBuffer()
        swap(&taken, &lines)
        lengths.removeAll()
        countWithoutBytes = 0
        taken.clear()
        return taken
    }

    /// Reserves room for about `bytes` more bytes of lines.
    mutating func reserve(bytes: Int) {
        lines.reserveCapacity(minimumWritableBytes: bytes)
    }
}
