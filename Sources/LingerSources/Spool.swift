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
/// - `NNNNNNNNNNNNNNNNNNNN.seg`: segments named by the sequence of their first record, each a run of records
///   `u32 length | u32 CRC-32 of the bytes | bytes` (big-endian). Record k of a segment has sequence
///   `first + k`, which is also its sequence on the link.
///
/// Durability: records are written before anything is sent, so a SIGKILL at any instant loses nothing that
/// was spooled (it is in the page cache); with ``FsyncPolicy`` `.everyAppend` (the default) each append is
/// also fsynced, so a power loss loses nothing that was sent. A torn last record (a crash mid-append) is cut
/// off on open; a damaged record anywhere else is an error that names the segment.
///
/// Blocking: used on ``SourceIO``'s threads; a writer and a reader may call it at once (one lock orders them).
public final class Spool: @unchecked Sendable {
    private let lock = Mutex(())
    public enum FsyncPolicy: Sendable { case everyAppend, none }

    public let directory: String
    public let streamName: String
    public let maximumBytes: Int64
    private let policy: FsyncPolicy
    private var segments: [(first: UInt64, path: String, bytes: Int64)] = []
    private var writeFD: Int32 = -1
    /// The sequence the next appended record gets.
    public private(set) var nextSequence: UInt64
    private let segmentLimit: Int64
    /// Where the last read stopped, so a sequential reader does not walk the segment from its start again.
    private var readCursor: (path: String, sequence: UInt64, offset: Int64)?

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
        streamName = try Self.loadOrCreateStreamName(directory)
        nextSequence = 1
        for name in Self.segmentNames(directory) {
            guard let first = UInt64(name.dropLast(4)) else { continue }
            segments.append((first, directory + "/" + name, 0))
        }
        segments.sort { $0.first < $1.first }
        for index in segments.indices {
            let (records, validBytes, fileBytes) = try Self.scan(segments[index].path)
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

    /// Appends a batch's messages as records (the fast path: no array per line).
    @discardableResult
    public func append(_ batch: LinkBatch) throws -> UInt64 {
        try lock.withLock { _ in try appendLocked(batch) }
    }

    private func appendLocked(_ batch: LinkBatch) throws -> UInt64 {
        let first = nextSequence
        guard !batch.isEmpty else { return first }
        let lineCount = batch.count
        var record: [UInt8] = []
        record.reserveCapacity(batch.byteCount)
        batch.forEachMessage { line in
            let crc = UInt32(crc32(0, line.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(line.count)))
            withUnsafeBytes(of: UInt32(line.count).bigEndian) { record += $0 }
            withUnsafeBytes(of: crc.bigEndian) { record += $0 }
            record += line
        }
        let held = segments.reduce(0, { $0 + $1.bytes })
        if held + Int64(record.count) > maximumBytes {
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
        while written < record.count {
            let n = record.withUnsafeBytes { write(writeFD, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                truncate(segments[segments.count - 1].path, off_t(before))
                throw SourceError("cannot write the spool \(directory): \(message)")
            }
            written += n
        }
        if policy == .everyAppend && fsync(writeFD) != 0 {
            let message = String(cString: strerror(errno))
            truncate(segments[segments.count - 1].path, off_t(before))
            throw SourceError("cannot fsync the spool \(directory): \(message)")
        }
        segments[segments.count - 1].bytes += Int64(record.count)
        nextSequence += UInt64(lineCount)
        return first
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
            let end = index + 1 < segments.count ? segments[index + 1].first : nextSequence
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
            var header = [UInt8](repeating: 0, count: 8)
            while sequence < wanted, offset < segment.bytes {
                guard pread(fd, &header, 8, off_t(offset)) == 8 else { break }
                offset += 8 + Int64(UInt32(bigEndian: header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
                sequence += 1
            }
            // Then whole blocks, parsed in memory.
            while offset < segment.bytes && size < limit {
                let want = Int(min(segment.bytes - offset, Int64(max(limit - size, 1 << 16))))
                var block = [UInt8](repeating: 0, count: want)
                let got = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
                // A block may be a single empty record: exactly its 8-byte header.
                guard got >= 8 else { break }
                var position = 0
                while position + 8 <= got {
                    let length = Int(UInt32(bigEndian: block.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: UInt32.self) }))
                    if position + 8 + length > got {
                        if position == 0 {
                            // One record larger than the block: read it alone.
                            var line = [UInt8](repeating: 0, count: length)
                            guard length == 0 || pread(fd, &line, length, off_t(offset + 8)) == length else { break }
                            line.withUnsafeBytes { lines.append($0) }
                            size += length + 1
                            position = 8 + length
                            sequence += 1
                        }
                        break
                    }
                    block.withUnsafeBytes { lines.append(UnsafeRawBufferPointer(rebasing: $0[(position + 8)..<(position + 8 + length)])) }
                    size += length + 1
                    position += 8 + length
                    sequence += 1
                    if size >= limit { break }
                }
                offset += Int64(position)
                if position == 0 { break }
            }
            readCursor = (segment.path, sequence, offset)
            wanted = sequence
        }
        return (after + 1, lines)
    }

    /// Removes every segment whose records are all acknowledged (sequence ≤ `acknowledged`).
    public func release(through acknowledged: UInt64) {
        lock.withLock { _ in releaseLocked(through: acknowledged) }
    }

    private func releaseLocked(through acknowledged: UInt64) {
        var removed = false
        while let segment = segments.first {
            let last = segments.count > 1 ? segments[1].first - 1 : nextSequence - 1
            guard last >= segment.first, last <= acknowledged else { break }
            if segments.count == 1, writeFD >= 0 {
                closeFD(writeFD)  // the next append starts a new segment
                writeFD = -1
            }
            if segments.count == 1 { Self.recordNext(nextSequence, in: directory) }  // numbering must survive the last segment
            unlink(segment.path)
            segments.removeFirst()
            removed = true
        }
        if removed { syncDirectory() }
    }

    public func close() {
        lock.withLock { _ in closeLocked() }
    }

    private func closeLocked() {
        if writeFD >= 0 {
            _ = fsyncAndClose(writeFD)
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
    private static func scan(_ path: String) throws -> (records: UInt64, validBytes: Int64, fileBytes: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { closeFD(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int64(info.st_size)
        var offset: Int64 = 0
        var records: UInt64 = 0
        var header = [UInt8](repeating: 0, count: 8)
        while offset + 8 <= size {
            guard pread(fd, &header, 8, off_t(offset)) == 8 else { break }
            let length = Int64(UInt32(bigEndian: header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
            let crc = UInt32(bigEndian: header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) })
            guard offset + 8 + length <= size else { break }
            var line = [UInt8](repeating: 0, count: Int(length))
            guard length == 0 || pread(fd, &line, Int(length), off_t(offset + 8)) == Int(length) else { break }
            let actual = UInt32(line.withUnsafeBytes { crc32(0, $0.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt($0.count)) })
            guard actual == crc else {
                if offset + 8 + length < size {
                    throw SourceError("spool segment \(path) is damaged at byte \(offset) (a record that is not the last): move it aside to keep the rest")
                }
                break
            }
            offset += 8 + length
            records += 1
        }
        return (records, offset, size)
    }

    /// The sequence recorded in `DIR/next` when the last segment was removed (1 when never).
    private static func recordedNext(_ directory: String) -> UInt64 {
        let fd = open(directory + "/next", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 1 }
        defer { closeFD(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? UInt64(String(decoding: buffer[0..<n], as: UTF8.self).trimmingTrailingNewline) ?? 1 : 1
    }

    private static func recordNext(_ next: UInt64, in directory: String) {
        let temporary = directory + "/next.tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let bytes = Array("\(next)\n".utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = fsyncAndClose(fd)
        rename(temporary, directory + "/next")
    }

    private static func loadOrCreateStreamName(_ directory: String) throws -> String {
        let path = directory + "/stream"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { closeFD(fd) }
            var buffer = [UInt8](repeating: 0, count: 128)
            let n = read(fd, &buffer, buffer.count)
            let name = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingTrailingNewline : ""
            guard name.hasPrefix("spool-"), name.count == 22 else { throw SourceError("\(path) does not name a spool stream; remove it to start a new spool") }
            return name
        }
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        let name = "spool-" + String(repeating: "0", count: 16 - hex.count) + hex
        let temporary = path + ".tmp"
        let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw SourceError("cannot write \(path): \(String(cString: strerror(errno)))") }
        let bytes = Array((name + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
        _ = fsyncAndClose(out)
        rename(temporary, path)
        return name
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
