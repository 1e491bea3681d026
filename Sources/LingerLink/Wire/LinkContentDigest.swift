import CLingerZlib

/// A digest of everything a stream holds, in 64 bits: the byte count (mod 2^32) of its messages, each
/// followed by a newline, in the high half, and their CRC-32C in the low half. It is what a mark's
/// ``LinkStreamMark/digest`` carries.
///
/// Why this and not the fingerprint of the last message (``LinkStreamMark/check``): two files that begin
/// alike (a banner, a CSV header, records that end in an empty line) often agree on one line at the mark,
/// and a sender that resumes on that agreement skips lines the server never got. The digest covers every
/// stored byte, so a file's first `sequence` lines either are the stream or are not. A CRC extends without
/// reading what came before (the server keeps only the digest), the sender computes the same value as it
/// frames, and SSE 4.2 computes it at several GB/s. The byte count also tells, before reading anything,
/// that a file shorter than a stream cannot continue it.
///
/// Not a defence against forgery: a sender only ever compares its own input with what it sent.
public enum LinkContentDigest {
    /// The digest of an empty stream.
    public static let empty: UInt64 = 0

    /// `digest` extended by `bytes`, which are whole messages each followed by its newline, as a line sink
    /// stores them.
    public static func extend(_ digest: UInt64, withLines bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return digest }
        let crc = linger_crc32c(UInt32(truncatingIfNeeded: digest), base, bytes.count)
        let length = UInt32(truncatingIfNeeded: digest >> 32) &+ UInt32(truncatingIfNeeded: bytes.count)
        return UInt64(length) << 32 | UInt64(crc)
    }

    /// `digest` extended by one message and its newline.
    public static func extend(_ digest: UInt64, withMessage message: UnsafeRawBufferPointer) -> UInt64 {
        var crc = UInt32(truncatingIfNeeded: digest)
        if let base = message.baseAddress, message.count > 0 { crc = linger_crc32c(crc, base, message.count) }
        var newline = UInt8(ascii: "\n")
        crc = linger_crc32c(crc, &newline, 1)
        let length = UInt32(truncatingIfNeeded: digest >> 32) &+ UInt32(truncatingIfNeeded: message.count) &+ 1
        return UInt64(length) << 32 | UInt64(crc)
    }

    /// The stored bytes (messages and newlines) a digest counts, mod 2^32.
    public static func length(of digest: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: digest >> 32) }

    /// The digest of a stream after a batch, from the mark before it: unknown (0) stays unknown, except
    /// from the start of a stream (sequence 0), where nothing came before.
    static func continuing(_ digest: UInt64, at sequence: UInt64, withLines bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard sequence == 0 || digest != 0 else { return 0 }
        return extend(sequence == 0 ? empty : digest, withLines: bytes)
    }
}
