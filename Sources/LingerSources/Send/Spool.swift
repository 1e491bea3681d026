#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLingerZlib
public import LingerLink
import Synchronization

/// A crash-safe on-disk queue for lines that cannot be read again (stdin, a pipe): each line is in the spool
/// before it is sent, and leaves it once the server acknowledged it.
///
/// Layout of the directory:
/// - `stream`: the link stream the spool feeds (`spool-` and 16 random hex digits), made on first use;
/// - `format`: `2` when each record's checksum is the CRC-32C of its length field and bytes. A spool without
///   it (made by linger 0.2.0) has zlib's CRC-32 of the bytes alone and keeps it until it is empty; a spool
///   that opens empty is (re)made as format 2;
/// - `NNNNNNNNNNNNNNNNNNNN.seg`: segments named by the sequence of their first record, each a run of records
///   `u32 length | u32 checksum | bytes` (big-endian). Record k of a segment has sequence `first + k`, which
///   is also its sequence on the link;
/// - `lock`: held (`flock`) by the one sender using the spool, with its pid; a second is refused.
///
/// Durability: records are written before anything is sent, so a SIGKILL at any instant loses nothing that
/// was spooled (it is in the page cache); with ``FsyncPolicy`` `.everyAppend` (the default) each append is
/// also fsynced before its lines are sent, so a power loss loses nothing that was sent. With `.none` a power
/// loss can lose the unacknowledged lines. A torn last record (a crash mid-append), and a bad record followed
/// by nothing but zeros (what a power loss can leave after unsynced writes), is cut off on open; a damaged
/// record anywhere else is an error that names the segment.
///
/// Blocking: used on ``SourceIO``'s threads; a writer and a reader may call it at once (one lock orders them).
public final class Spool: @unchecked Sendable {
    private let lock = Mutex(())
    public enum FsyncPolicy: Sendable { case everyAppend, none }
    /// How records are checksummed: see `format` in the layout above.
    enum RecordChecksum: Sendable, Equatable {
        /// zlib's CRC-32: spools written by linger 0.2.0.
        case crc32
        /// CRC-32C (with the CPU's instruction) of the length field and the bytes: format 2. Covering the length
        /// means a run of zeros (what a power loss can leave at the end of a file written without fsync) is
        /// not a valid empty record, as it is under `.crc32`.
        case crc32c

        func callAsFunction(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
            switch self {
            case .crc32:
                return UInt32(CLingerZlib.crc32(0, bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
            case .crc32c:
                var length = UInt32(bytes.count).bigEndian
                let header = withUnsafeBytes(of: &length) { linger_crc32c(0, $0.baseAddress, 4) }
                return linger_crc32c(header, bytes.baseAddress, bytes.count)
            }
        }
    }
    let checksum: RecordChecksum

    public let directory: String
    public let streamName: String
    public let maximumBytes: Int64
    private let policy: FsyncPolicy
    private let writerLock: WriterLock
    private var segments: [(first: UInt64, path: String, bytes: Int64)] = []
    private var writeFD: Int32 = -1
    /// The sequence the next appended record gets.
    public private(set) var nextSequence: UInt64
    private let segmentLimit: Int64
    /// Where the last read stopped, so a sequential reader does not walk the segment from its start again.
    private var readCursor: (path: String, sequence: UInt64, offset: Int64)?
    /// Where recent appends began. A sender that took those lines from memory (``FreshBatches``) and then
    /// reads the next ones from disk starts at the nearest one instead of walking every header since the
    /// cursor (a million 8-byte reads for 2 million lines, measured).
    private var appendStarts: [(path: String, sequence: UInt64, offset: Int64)] = []
    /// Records below this sequence are written and, under `.everyAppend`, fsynced: the only ones a reader
    /// gets. An append fsyncs outside the lock, so sending and releasing go on while the disk works.
    private var durableNext: UInt64
    /// Serialises appends (one writer at a time) without holding ``lock`` during the fsync.
    private let appendLock = Mutex(())
    /// Records being appended, encoded; see ``encode(_:)``.
    private var encoded: [UInt8] = []

    /// Opens (creating) the spool in `directory`, cutting a torn tail.
    /// - Throws: ``SourceError`` naming the segment when a record before the tail is damaged.
    public init(directory: String, maximumBytes: Int64 = 1 << 30, policy: FsyncPolicy = .everyAppend, segmentBytes: Int64 = 64 << 20) throws {
        self.directory = directory
        self.maximumBytes = maximumBytes
        self.policy = policy
        segmentLimit = segmentBytes
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw SourceError("cannot create the spool directory \(directory): \(String(cString: strerror(errno)))")
        }
        // Before reading anything: a second sender would cut the first's append in progress as a torn tail.
        do {
            writerLock = try WriterLock(path: directory + "/lock")
        } catch {
            switch error {
            case .held(let holder):
                throw SourceError("the spool \(directory) is in use by another sender\(WriterLock.describe(holder)); give each sender its own --spool")
            case .cannotLock(let code):
                throw SourceError("cannot lock the spool \(directory)/lock: \(String(cString: strerror(code)))")
            }
        }
        streamName = try Self.loadOrCreateStreamName(directory)
        nextSequence = 1
        durableNext = 1
        for name in Self.segmentNames(directory) {
            guard let first = UInt64(name.dropLast(4)) else { continue }
            segments.append((first, directory + "/" + name, 0))
        }
        segments.sort { $0.first < $1.first }
        checksum = try Self.loadOrCreateFormat(directory, holdsSegments: !segments.isEmpty)
        for index in segments.indices {
            let (records, validBytes, fileBytes) = try Self.scan(segments[index].path, checksum: checksum)
            let isLast = index == segments.count - 1
            if validBytes < fileBytes {
                guard isLast else {
                    throw SourceError("spool segment \(segments[index].path) is damaged at byte \(validBytes) (not at its end): move it aside to keep the rest")
                }
                truncate(segments[index].path, off_t(validBytes))  // a torn append: never sent, never acknowledged
            }
            segments[index].bytes = validBytes
            nextSequence = segments[index].first + records
        }
        // When every segment was acknowledged and removed, the numbering goes on from what `next` recorded.
        nextSequence = max(nextSequence, Self.recordedNext(directory))
        durableNext = nextSequence
        if let last = segments.last, last.bytes < segmentLimit {
            writeFD = open(last.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        }
    }

    /// Bytes the spool holds.
    public var bytes: Int64 { lock.withLock { _ in segments.reduce(0) { $0 + $1.bytes } } }

    /// Appends lines (each without its newline); returns the sequence of the first.
    /// - Throws: ``SourceError`` when the spool is full or the disk fails (nothing of this append was kept).
    @discardableResult
    public func append(_ lines: [[UInt8]]) throws -> UInt64 {
        var batch = LinkBatch()
        for line in lines { batch.append(line) }
        return try append(batch)
    }

    /// Appends a batch's messages as records (the fast path: no array per line). Returns once the records are
    /// written and, under `.everyAppend`, fsynced; readers see them only then.
    @discardableResult
    public func append(_ batch: LinkBatch) throws -> UInt64 {
        try appendLock.withLock { _ in
            let size = encode(batch)
            let (first, fd, before) = try lock.withLock { _ in try writeLocked(size, lines: batch.count) }
            if policy == .everyAppend && fsync(fd) != 0 {
                let message = String(cString: strerror(errno))
                lock.withLock { _ in undoLocked(to: before, first: first) }
                throw SourceError("cannot fsync the spool \(directory): \(message)")
            }
            lock.withLock { _ in durableNext = nextSequence }
            return first
        }
    }

    /// `u32 length | u32 checksum | bytes` per line, into ``encoded`` (reused: a fresh 4 MiB array per append
    /// cost a tenth of a spooled sender's CPU in page faults). Called under `appendLock` only.
    private func encode(_ batch: LinkBatch) -> Int {
        var total = 0  // the batch's byteCount counts DATA frame headers, not record headers
        batch.forEachMessage { total += 8 + $0.count }
        if encoded.count < total { encoded = [UInt8](repeating: 0, count: total) }
        let checksum = self.checksum
        encoded.withUnsafeMutableBytes { out in
            var position = 0
            batch.forEachMessage { line in
                out.storeBytes(of: UInt32(line.count).bigEndian, toByteOffset: position, as: UInt32.self)
                out.storeBytes(of: checksum(line).bigEndian, toByteOffset: position + 4, as: UInt32.self)
                if !line.isEmpty { (out.baseAddress! + position + 8).copyMemory(from: line.baseAddress!, byteCount: line.count) }
                position += 8 + line.count
            }
        }
        return total
    }

    /// Writes the records at the end of the last segment (starting one when needed); returns the first
    /// sequence, the descriptor to fsync and the segment's size before, to undo a failed fsync.
    private func writeLocked(_ size: Int, lines lineCount: Int) throws -> (first: UInt64, fd: Int32, before: Int64) {
        let first = nextSequence
        guard lineCount > 0 else { return (first, -1, 0) }
        let held = segments.reduce(0, { $0 + $1.bytes })
        if held + Int64(size) > maximumBytes {
            throw SourceError("the spool \(directory) is full (\(held) bytes of at most \(maximumBytes)): the server has not acknowledged what it holds")
        }
        if writeFD < 0 || segments.last!.bytes >= segmentLimit {
            if writeFD >= 0 { closeFD(writeFD) }
            let path = directory + "/" + Self.segmentName(first)
            writeFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard writeFD >= 0 else { throw SourceError("cannot create \(path): \(String(cString: strerror(errno)))") }
            segments.append((first, path, 0))
            syncDirectory()
        }
        let before = segments[segments.count - 1].bytes
        var written = 0
        while written < size {
            let n = encoded.withUnsafeBytes { write(writeFD, $0.baseAddress! + written, size - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                truncate(segments[segments.count - 1].path, off_t(before))
                throw SourceError("cannot write the spool \(directory): \(message)")
            }
            written += n
        }
        let path = segments[segments.count - 1].path
        appendStarts.append((path, first, before))
        if appendStarts.count > 1024 { appendStarts.removeFirst(appendStarts.count - 1024) }
        segments[segments.count - 1].bytes += Int64(size)
        nextSequence += UInt64(lineCount)
        // The descriptor stays open until the next append (which holds `appendLock`) or a release that closes
        // it; a release only closes it once every record is acknowledged, and none is sent before it is durable.
        return (first, writeFD, before)
    }

    /// Takes back an append whose fsync failed: nobody read it (it was not durable), so it can go.
    private func undoLocked(to before: Int64, first: UInt64) {
        guard let last = segments.last, nextSequence > first else { return }
        truncate(last.path, off_t(before))
        segments[segments.count - 1].bytes = before
        nextSequence = first
        appendStarts.removeAll { $0.sequence >= first }
    }

    /// Records with sequence above `after`, up to `limit` bytes of lines: what to send next.
    public func records(after: UInt64, limit: Int = 256 << 10) throws -> (first: UInt64, lines: [[UInt8]]) {
        let (first, batch) = try batch(after: after, limit: limit)
        return (first, batch.payloads)
    }

    /// Records with sequence above `after`, up to `limit` bytes of lines, as a batch ready to send.
    public func batch(after: UInt64, limit: Int = 1 << 20) throws -> (first: UInt64, batch: LinkBatch) {
        try lock.withLock { _ in try recordsLocked(after: after, limit: limit) }
    }

    /// The sequence the next appended record gets.
    public var next: UInt64 { lock.withLock { _ in nextSequence } }

    private func recordsLocked(after: UInt64, limit: Int) throws -> (first: UInt64, batch: LinkBatch) {
        var lines = LinkBatch(capacity: limit + limit / 4)
        var size = 0
        var wanted = after + 1
        for (index, segment) in segments.enumerated() {
            let end = index + 1 < segments.count ? segments[index + 1].first : durableNext
            guard wanted < end, size < limit else { continue }
            let fd = open(segment.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SourceError("cannot read \(segment.path): \(String(cString: strerror(errno)))") }
            defer { closeFD(fd) }
            // Where record `wanted` starts: from the cursor a sequential reader leaves, else by walking headers.
            var offset: Int64 = 0
            var sequence = segment.first
            if let cursor = readCursor, cursor.path == segment.path, cursor.sequence <= wanted, cursor.sequence >= segment.first {
                (offset, sequence) = (cursor.offset, cursor.sequence)
            }
            if let start = appendStarts.last(where: { $0.path == segment.path && $0.sequence <= wanted }), start.sequence > sequence {
                (offset, sequence) = (start.offset, start.sequence)
            }
            (offset, sequence) = Self.skip(fd, from: (offset, sequence), to: wanted, limit: segment.bytes)
            // Then whole blocks, parsed in memory, until the batch is full.
            offset = Self.walkRecords(fd, from: offset, end: segment.bytes, blockSize: max(limit - size, 1 << 16)) { record in
                guard size < limit else { return false }
                lines.append(record.payload)
                size += record.length + 1
                sequence += 1
                return true
            }
            readCursor = (segment.path, sequence, offset)
            wanted = sequence
        }
        return (after + 1, lines)
    }

    /// Walks record headers from `start` until record `wanted` (or `limit`), reading 64 KiB at a time.
    private static func skip(_ fd: Int32, from start: (offset: Int64, sequence: UInt64), to wanted: UInt64, limit: Int64) -> (Int64, UInt64) {
        var sequence = start.sequence
        guard sequence < wanted else { return (start.offset, sequence) }
        let offset = walkRecords(fd, from: start.offset, end: limit, blockSize: 64 << 10, payloads: false) { _ in
            guard sequence < wanted else { return false }
            sequence += 1
            return true
        }
        return (offset, sequence)
    }

    /// One record as ``walkRecords(_:from:end:blockSize:payloads:_:)`` meets it.
    private struct WalkedRecord {
        /// Where its header starts in the file.
        let offset: Int64
        let length: Int
        let checksum: UInt32
        /// Its bytes (empty when the walk reads headers only).
        let payload: UnsafeRawBufferPointer
    }

    /// The one walk over a segment's records that opening (checking each), skipping (counting headers) and
    /// reading (copying lines out) share: `blockSize` bytes per `pread`, a record larger than a block read
    /// alone, and with `payloads: false` only the headers, jumping over the bytes. Stops before the first
    /// record that `visit` declines, that would end past `end` (torn), or that cannot be read.
    /// - Returns: where that record starts: everything before it was visited and accepted.
    private static func walkRecords(
        _ fd: Int32, from start: Int64, end: Int64, blockSize: Int, payloads: Bool = true,
        _ visit: (WalkedRecord) throws -> Bool
    ) rethrows -> Int64 {
        var offset = start
        var block = [UInt8](repeating: 0, count: blockSize)
        while offset + 8 <= end {
            let want = Int(min(end - offset, Int64(blockSize)))
            let base = offset
            let got = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(base)) }
            // A block may be a single empty record: exactly its 8-byte header.
            guard got >= 8 else { return offset }
            var position = 0
            while position + 8 <= got {
                let (length, checksum) = block.withUnsafeBytes {
                    (Int(UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt32.self))),
                     UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self)))
                }
                let at = base + Int64(position)
                guard at + 8 + Int64(length) <= end else { return at }
                let accepted: Bool
                if !payloads {
                    accepted = try visit(WalkedRecord(offset: at, length: length, checksum: checksum, payload: UnsafeRawBufferPointer(start: nil, count: 0)))
                } else if position + 8 + length <= got {
                    accepted = try block.withUnsafeBytes {
                        try visit(WalkedRecord(offset: at, length: length, checksum: checksum,
                                               payload: UnsafeRawBufferPointer(rebasing: $0[(position + 8)..<(position + 8 + length)])))
                    }
                } else if position > 0 {
                    break  // read on from this record
                } else {
                    // One record larger than the block: read it alone.
                    var line = [UInt8](repeating: 0, count: length)
                    guard length == 0 || pread(fd, &line, length, off_t(at + 8)) == length else { return at }
                    accepted = try line.withUnsafeBytes { try visit(WalkedRecord(offset: at, length: length, checksum: checksum, payload: $0)) }
                }
                guard accepted else { return at }
                position += 8 + length  // headers only: may pass the block, and the next read starts after it
            }
            offset += Int64(position)
        }
        return offset
    }

    /// Removes every segment whose records are all acknowledged (sequence ≤ `acknowledged`).
    /// The files are unlinked outside the lock: removing a 64 MiB segment takes 20 to 50 ms here, which
    /// appends and reads need not wait for.
    /// The sequence whose acknowledgement frees the oldest segment (its last record); nil when empty.
    public var oldestSegmentEnd: UInt64? { lock.withLock { _ in oldestSegmentEndLocked() } }

    private func oldestSegmentEndLocked() -> UInt64? {
        guard let segment = segments.first else { return nil }
        let last = segments.count > 1 ? segments[1].first - 1 : nextSequence - 1
        return last >= segment.first ? last : nil
    }

    public func release(through acknowledged: UInt64) {
        let removed = lock.withLock { _ in releaseLocked(through: acknowledged) }
        guard !removed.isEmpty else { return }
        for path in removed { unlink(path) }
        syncDirectory()
    }

    /// Forgets the acknowledged segments; returns their paths, for the caller to unlink.
    private func releaseLocked(through acknowledged: UInt64) -> [String] {
        var removed: [String] = []
        while let segment = segments.first {
            guard let last = oldestSegmentEndLocked(), last <= acknowledged else { break }
            if segments.count == 1, writeFD >= 0 {
                closeFD(writeFD)  // the next append starts a new segment
                writeFD = -1
            }
            if segments.count == 1 { Self.recordNext(nextSequence, in: directory) }  // numbering must survive the last segment
            removed.append(segment.path)
            appendStarts.removeAll { $0.path == segment.path }
            segments.removeFirst()
        }
        return removed
    }

    /// Closes the segment being written and lets another sender use the spool.
    public func close() {
        lock.withLock { _ in closeLocked() }
        writerLock.release()
    }

    private func closeLocked() {
        if writeFD >= 0 {
            if policy == .everyAppend { _ = fsyncAndClose(writeFD) } else { closeFD(writeFD) }
            writeFD = -1
        }
    }

    deinit { closeLocked() }

    // MARK: - Files

    private static func segmentName(_ first: UInt64) -> String {
        let digits = String(first)
        return String(repeating: "0", count: 20 - digits.count) + digits + ".seg"
    }

    private static func segmentNames(_ directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if name.hasSuffix(".seg") && name.count == 24 { names.append(name) }
        }
        return names
    }

    /// Walks a segment's records: how many are whole and valid, and where the valid part ends. A bad record
    /// that is the last thing in the file is a torn append; one with more records after it is damage.
    /// Reads 1 MiB at a time (a 64 MiB segment of 64-byte lines is a million records).
    private static func scan(_ path: String, checksum: RecordChecksum) throws -> (records: UInt64, validBytes: Int64, fileBytes: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { closeFD(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int64(info.st_size)
        var records: UInt64 = 0
        let valid = try walkRecords(fd, from: 0, end: size, blockSize: 1 << 20) { record in
            guard checksum(record.payload) == record.checksum else {
                // The last thing in the file (or followed by zeros only): a torn append. Else: damage.
                if record.offset + 8 + Int64(record.length) < size && !onlyZeros(fd, from: record.offset, to: size) {
                    throw SourceError("spool segment \(path) is damaged at byte \(record.offset) (a record that is not the last): move it aside to keep the rest")
                }
                return false
            }
            records += 1
            return true
        }
        return (records, valid, size)
    }

    /// Whether bytes `from..<to` of the file are all zero.
    private static func onlyZeros(_ fd: Int32, from: Int64, to: Int64) -> Bool {
        var block = [UInt8](repeating: 0, count: 1 << 16)
        var offset = from
        while offset < to {
            let got = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(min(to - offset, 1 << 16)), off_t(offset)) }
            guard got > 0, block[0..<got].allSatisfy({ $0 == 0 }) else { return false }
            offset += Int64(got)
        }
        return true
    }

    /// The record format of the spool in `directory`: what `format` says; CRC-32 for an older spool that
    /// still holds segments; for an empty spool, format 2, written down before any segment.
    private static func loadOrCreateFormat(_ directory: String, holdsSegments: Bool) throws -> RecordChecksum {
        let path = directory + "/format"
        if let text = readSmallFile(path) {
            switch text {
            case "2": return .crc32c
            case "1": return .crc32
            default: throw SourceError("\(path) names spool format \"\(text)\", which this linger does not know: use a newer linger or another --spool directory")
            }
        }
        if holdsSegments { return .crc32 }
        try replaceSmallFile(path, with: "2")
        return .crc32c
    }

    /// The sequence recorded in `DIR/next` when the last segment was removed (1 when never).
    private static func recordedNext(_ directory: String) -> UInt64 {
        readSmallFile(directory + "/next").flatMap { UInt64($0) } ?? 1
    }

    private static func recordNext(_ next: UInt64, in directory: String) {
        try? replaceSmallFile(directory + "/next", with: String(next))
    }

    private static func loadOrCreateStreamName(_ directory: String) throws -> String {
        let path = directory + "/stream"
        if let name = readSmallFile(path) {
            guard name.hasPrefix("spool-"), name.count == 22 else { throw SourceError("\(path) does not name a spool stream; remove it to start a new spool") }
            return name
        }
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        let name = "spool-" + String(repeating: "0", count: 16 - hex.count) + hex
        try replaceSmallFile(path, with: name)
        return name
    }

    /// A one-line file's text without its newline; nil when it does not exist.
    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { closeFD(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingTrailingNewline : ""
    }

    /// Writes `text` and a newline to `path` whole or not at all: a temporary file, fsynced, renamed over it.
    private static func replaceSmallFile(_ path: String, with text: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SourceError("cannot write \(path): \(String(cString: strerror(errno)))") }
        _ = Array((text + "\n").utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = fsyncAndClose(fd)
        rename(temporary, path)
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsyncAndClose(fd) }
    }
}

private func closeFD(_ fd: Int32) { _ = close(fd) }

private func fsyncAndClose(_ fd: Int32) -> Int32 {
    fsync(fd)
    return close(fd)
}

extension String {
    fileprivate var trimmingTrailingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
