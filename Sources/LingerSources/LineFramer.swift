#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import LingerLink

/// Splits a byte stream into lines and encodes them straight into a ``LinkBatch`` (no per-line allocation).
///
/// A line is the bytes before a newline. One longer than ``maximumLineBytes`` is cut to that many bytes (the
/// rest, up to its newline, is dropped) and reported in ``truncated``, as Filebeat's `max_bytes` does: one
/// huge line must neither stall the link nor be refused by the server forever.
///
/// Resuming: the first ``skip`` lines are counted but not sent (the server holds them). The last of them is
/// fingerprinted and compared with the server's check, so a sender never skips lines of a different file
/// that merely begins like one it shipped.
public struct LineFramer: Sendable {
    public let maximumLineBytes: Int
    /// Lines completed so far (the number of the last complete line).
    public private(set) var lines: UInt64 = 0
    /// Lines still to skip before sending.
    public private(set) var skip: UInt64 = 0
    /// The fingerprint the last skipped line must have (0: not checked).
    private var skipCheck: UInt64 = 0
    /// Set when the last skipped line did not match the server's check.
    public private(set) var resumeMismatch = false
    /// Line numbers cut to the limit since the last ``takeTruncated()``, with their full length.
    public private(set) var truncated: [(line: UInt64, bytes: Int)] = []
    private var carry: [UInt8] = []
    private var carryLength = 0

    public init(maximumLineBytes: Int = 16 << 20) {
        self.maximumLineBytes = max(1, maximumLineBytes)
    }

    /// Skip the first `lines` lines; the last of them must have fingerprint `check` (0: unchecked).
    public mutating func resume(after lines: UInt64, check: UInt64) {
        skip = lines
        skipCheck = check
    }

    /// Frames every complete line in `bytes` into `batch`; a line that does not end here is carried.
    /// - Returns: how many lines completed (sent or skipped).
    @discardableResult
    public mutating func frame(_ bytes: UnsafeRawBufferPointer, into batch: inout LinkBatch) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        var completed = 0
        var start = 0
        // memchr finds newlines with vector instructions; a byte loop capped 1 KiB lines at about 1 M/s.
        while start < bytes.count {
            guard let found = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) else {
                addToCarry(UnsafeRawBufferPointer(start: base + start, count: bytes.count - start))
                break
            }
            let end = base.distance(to: UnsafeRawPointer(found))
            let piece = UnsafeRawBufferPointer(start: base + start, count: end - start)
            if carry.isEmpty && carryLength == 0 {
                emit(piece, fullLength: piece.count, into: &batch)
            } else {
                addToCarry(piece)
                let full = carryLength
                carry.withUnsafeBytes { emit($0, fullLength: full, into: &batch) }
                carry.removeAll(keepingCapacity: true)
                carryLength = 0
            }
            completed += 1
            start = end + 1
        }
        return completed
    }

    /// At the end of an input that will not grow: a last line without its newline is still a line.
    /// - Returns: whether there was one.
    @discardableResult
    public mutating func finish(into batch: inout LinkBatch) -> Bool {
        guard carryLength > 0 else { return false }
        let full = carryLength
        carry.withUnsafeBytes { emit($0, fullLength: full, into: &batch) }
        carry.removeAll(keepingCapacity: true)
        carryLength = 0
        return true
    }

    /// Whether a partial line is waiting for its newline.
    public var hasPartialLine: Bool { carryLength > 0 }

    /// The truncations reported since the last call.
    public mutating func takeTruncated() -> [(line: UInt64, bytes: Int)] {
        defer { truncated.removeAll() }
        return truncated
    }

    private mutating func addToCarry(_ bytes: UnsafeRawBufferPointer) {
        let room = maximumLineBytes - carry.count
        if room > 0 { carry.append(contentsOf: bytes.prefix(room)) }
        carryLength += bytes.count
    }

    /// One complete line (already cut to the limit when it was carried).
    private mutating func emit(_ line: UnsafeRawBufferPointer, fullLength: Int, into batch: inout LinkBatch) {
        lines += 1
        let kept = UnsafeRawBufferPointer(start: line.baseAddress, count: min(line.count, maximumLineBytes))
        if fullLength > maximumLineBytes { truncated.append((lines, fullLength)) }
        if skip > 0 {
            skip -= 1
            if skip == 0 && skipCheck != 0 && LinkFingerprint.fnv1a(kept) != skipCheck { resumeMismatch = true }
            return
        }
        batch.append(kept)
    }
}
