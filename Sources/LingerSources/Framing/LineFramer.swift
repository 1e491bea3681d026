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
/// Every complete line, sent or skipped, extends ``digest`` exactly as the server's sink extends a stream's
/// (``LinkContentDigest``: the line as sent, and its newline), so a sender proves its input is the content a
/// stream holds by comparing two numbers.
///
/// Resuming: the first ``skip`` lines are counted but not sent (the server holds them). When the last of them
/// is reached, the digest so far must be the stream's (or, with no digest, the last line must have the
/// stream's fingerprint), else ``resumeMismatch`` is set: a file that merely begins like a stream is not it.
public struct LineFramer: Sendable {
    public let maximumLineBytes: Int
    /// Lines completed so far (the number of the last complete line).
    public private(set) var lines: UInt64 = 0
    /// The ``LinkContentDigest`` of every complete line so far.
    public private(set) var digest: UInt64 = LinkContentDigest.empty
    /// The fingerprint of the last skipped line, once the skip is done (the digest covers what is sent: an
    /// FNV pass over every sent line would cost more than the CRC).
    public private(set) var lastCheck: UInt64 = 0
    /// Input bytes consumed through the last newline: where the partial line, if any, begins.
    public private(set) var completedBytes: Int64 = 0
    /// Lines still to skip before sending.
    public private(set) var skip: UInt64 = 0
    private var expected: (digest: UInt64, check: UInt64) = (0, 0)
    /// Set when the skipped lines turned out not to be the stream's content.
    public private(set) var resumeMismatch = false
    /// Line numbers cut to the limit since the last ``takeTruncated()``, with their full length.
    public private(set) var truncated: [(line: UInt64, bytes: Int)] = []
    /// Line counts at which to remember the digest (a verification looks for several streams in one pass).
    private var stops: [UInt64] = []
    /// The digest, the line's fingerprint and the end of each line count of ``stop(at:)`` reached so far.
    public private(set) var reached: [UInt64: (digest: UInt64, check: UInt64, end: Int64)] = [:]
    private var carry: [UInt8] = []
    private var carryLength = 0

    public init(maximumLineBytes: Int = 16 << 20) {
        self.maximumLineBytes = max(1, maximumLineBytes)
    }

    /// Starts at a point of an input already framed once: `lines` lines through byte `offset`, with their
    /// digest (a resume that was verified, or a harvester continuing where it stopped).
    public init(maximumLineBytes: Int, continuingAfter lines: UInt64, digest: UInt64, at offset: Int64) {
        self.init(maximumLineBytes: maximumLineBytes)
        self.lines = lines
        self.digest = digest
        self.completedBytes = offset
    }

    /// Skip the first `lines` lines; the stream they must be has `digest` (0: unknown) and, for its last
    /// message, fingerprint `check` (0: unchecked).
    public mutating func resume(after lines: UInt64, digest: UInt64 = 0, check: UInt64) {
        skip = lines
        expected = (digest, check)
    }

    /// Remember the digest at each of these line counts (see ``reached``).
    public mutating func stop(at counts: some Sequence<UInt64>) {
        stops = Array(Set(counts)).sorted(by: >)
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
            let consumed = Int64(carryLength + piece.count + 1)
            if carry.isEmpty && carryLength == 0 {
                emit(piece, fullLength: piece.count, consumed: consumed, into: &batch)
            } else {
                addToCarry(piece)
                let full = carryLength
                let line = carry
                line.withUnsafeBytes { emit($0, fullLength: full, consumed: consumed, into: &batch) }
                clearCarry()
            }
            completed += 1
            start = end + 1
        }
        return completed
    }

    /// At the end of an input that will not grow: a last line without its newline is still a line (its
    /// digest counts the newline the sink adds).
    /// - Returns: whether there was one.
    @discardableResult
    public mutating func finish(into batch: inout LinkBatch) -> Bool {
        guard carryLength > 0 else { return false }
        let full = carryLength
        let line = carry
        line.withUnsafeBytes { emit($0, fullLength: full, consumed: Int64(full), into: &batch) }
        clearCarry()
        return true
    }

    /// Whether a partial line is waiting for its newline.
    public var hasPartialLine: Bool { carryLength > 0 }

    /// Forgets a partial line (its input was cut: copytruncate).
    public mutating func dropPartialLine() { clearCarry() }

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

    private mutating func clearCarry() {
        // A huge line once must not pin its buffer in every idle follower.
        carry.removeAll(keepingCapacity: carry.capacity <= 64 << 10)
        carryLength = 0
    }

    /// One complete line (already cut to the limit when it was carried).
    private mutating func emit(_ line: UnsafeRawBufferPointer, fullLength: Int, consumed: Int64, into batch: inout LinkBatch) {
        lines += 1
        completedBytes += consumed
        let kept = UnsafeRawBufferPointer(start: line.baseAddress, count: min(line.count, maximumLineBytes))
        if fullLength > maximumLineBytes { truncated.append((lines, fullLength)) }
        digest = LinkContentDigest.extend(digest, withMessage: kept)
        if let next = stops.last, next == lines {
            reached[lines] = (digest, LinkFingerprint.fnv1a(kept), completedBytes)
            stops.removeLast()
        }
        if skip > 0 {
            skip -= 1
            if skip == 0 {
                lastCheck = LinkFingerprint.fnv1a(kept)
                if expected.digest != 0 ? digest != expected.digest : (expected.check != 0 && lastCheck != expected.check) {
                    resumeMismatch = true
                }
            }
            return
        }
        batch.append(kept)
    }
}
