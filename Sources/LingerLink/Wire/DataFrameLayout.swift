/// Where the fields of a DATA frame sit, and the only code that knows it:
///
///     u32 length (of what follows) | u8 type (3) | u32 stream | u64 sequence | payload
///
/// The hot paths (the sender stamping sequences into prepared frames, the server walking a run of frames in
/// place) read and write these fields through raw pointers rather than `ByteBuffer`'s per-integer calls,
/// which cost a third of the sender's and a tenth of the server's time at 64 B. Every such access goes
/// through here, so a change to the layout is a change to this file.
@usableFromInline
enum DataFrameLayout {
    /// The length field's own size: a frame occupies this plus its length.
    @usableFromInline static let lengthFieldSize = 4
    @usableFromInline static let typeOffset = 4
    @usableFromInline static let streamOffset = 5
    @usableFromInline static let sequenceOffset = 9
    /// Where the payload begins; also what a frame adds to its message (``LinkLimits/dataFrameOverhead``).
    @usableFromInline static let payloadOffset = 17
    /// The smallest length field a DATA frame can have: type, stream and sequence, no payload.
    @usableFromInline static let minimumLength = UInt32(payloadOffset - lengthFieldSize)
    /// The type byte (``LinkFrame/Kind/data``), spelled here for the inlinable writers.
    @usableFromInline static let type: UInt8 = 3

    /// The length field for a payload of `count` bytes.
    @inlinable static func lengthField(payloadCount count: Int) -> UInt32 { UInt32(Int(minimumLength) + count) }

    /// Writes a whole frame at the start of `target`, which has room for `payloadOffset + payload.count` bytes.
    @inlinable
    static func write(stream: UInt32, sequence: UInt64, payload: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) {
        target.storeBytes(of: lengthField(payloadCount: payload.count).bigEndian, toByteOffset: 0, as: UInt32.self)
        target.storeBytes(of: type, toByteOffset: typeOffset, as: UInt8.self)
        stamp(stream: stream, sequence: sequence, into: target, at: 0)
        if let base = payload.baseAddress, payload.count > 0 {
            (target.baseAddress! + payloadOffset).copyMemory(from: base, byteCount: payload.count)
        }
    }

    /// Sets the stream and sequence of the frame at `offset` (the sender numbers prepared frames late).
    @inlinable
    static func stamp(stream: UInt32, sequence: UInt64, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBytes(of: stream.bigEndian, toByteOffset: offset + streamOffset, as: UInt32.self)
        bytes.storeBytes(of: sequence.bigEndian, toByteOffset: offset + sequenceOffset, as: UInt64.self)
    }

    /// The frame at `offset` of `bytes`, read in place; `bytes` holds it whole.
    @usableFromInline
    struct Frame {
        @usableFromInline let bytes: UnsafeRawBufferPointer
        @usableFromInline let offset: Int

        @inlinable init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
            self.bytes = bytes
            self.offset = offset
        }

        @inlinable var length: Int { Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) }
        @inlinable var stream: UInt32 { UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + streamOffset, as: UInt32.self)) }
        @inlinable var sequence: UInt64 { UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + sequenceOffset, as: UInt64.self)) }
        @inlinable var payloadCount: Int { length - Int(minimumLength) }
        @inlinable var payload: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[(offset + payloadOffset)..<(offset + lengthFieldSize + length)])
        }
        /// Where the next frame begins.
        @inlinable var end: Int { offset + lengthFieldSize + length }
    }

    /// How many bytes from `offset` on are whole DATA frames no longer than `maximumLength` (0 when the
    /// first is another type, too long, or not all there yet).
    static func wholeDataFrames(in bytes: UnsafeRawBufferPointer, maximumLength: UInt32) -> Int {
        var offset = 0
        while bytes.count - offset >= lengthFieldSize + 1 {  // the length and the type
            let length = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard bytes[offset + typeOffset] == type, length >= minimumLength, length <= maximumLength,
                bytes.count - offset >= lengthFieldSize + Int(length)
            else { break }
            offset += lengthFieldSize + Int(length)
        }
        return offset
    }
}
