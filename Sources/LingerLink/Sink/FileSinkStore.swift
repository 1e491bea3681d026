#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// The blocking core of ``FileSink``: opens and verifies the data file against its state log, commits groups
/// of batches, and puts both files back at the last commit after any failure. It runs on the sink's own
/// thread only (never an event loop).
///
/// Invariants, after every call, returned or thrown:
/// - the data file is exactly `committed` bytes long, or longer only by bytes that no record covers and that
///   the next call (or the next open) cuts away before writing anything;
/// - the state log ends with a complete record;
/// - nothing is acknowledged (a commit returns) unless its bytes and its record were written, and fsynced
///   when the policy says so.
final class FileSinkStore {
    let path: String
    let statePath: String
    let policy: FsyncPolicy
    /// `PATH.linger-lock`: one server writes a file at a time.
    private let writerLock: WriterLock
    private var dataFD: Int32 = -1
    private var stateFD: Int32 = -1
    private var identity: FileSinkStateLog.Identity
    private(set) var committed: Int64 = 0
    private var stateLength: Int64 = 0
    private var book = MarkBook()
    private var head: (length: Int64, hash: UInt64)?
    private var recordsSinceCompaction = 0
    private var lastSync: ContinuousClock.Instant = .now
    /// Where the data file's pages may still be cached: synced bytes before it were dropped from the cache.
    private var cachedFrom: Int64 = 0
    /// Set after a failure whose repair itself failed: the next call repairs before it writes.
    private var needsRepair = false
    /// What opening had to do (cut a torn tail, adopt content), for the server's log.
    private(set) var openingNotes: [String] = []
    let rotation: OutputRotation
    /// When the current data file was opened (for rotation by age).
    private var openedAt: ContinuousClock.Instant = .now
    /// Compression and pruning of rotated files, off the sink's thread (started on first rotation).
    private var housekeeping: NIOThreadPool?
    /// Test hooks: fail the next data write after this many bytes, or the next fsync, with an errno.
    var injectWriteFailure: (afterBytes: Int, errno: Int32)?
    var injectFsyncFailure: Int32?

    /// Opens (creating if needed) the data file and its state log.
    /// - Parameter adoptExisting: a non-empty data file without a state log is kept as if committed, and new
    ///   data is appended after it; without this flag such a file is refused, never truncated.
    /// - Throws: ``LinkSinkError`` (not retryable) naming the file, what is wrong and what to do.
    init(path: String, policy: FsyncPolicy, adoptExisting: Bool = false, rotation: OutputRotation = OutputRotation()) throws {
        self.path = path
        self.statePath = path + ".linger-state"
        self.policy = policy
        self.rotation = rotation
        dataFD = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard dataFD >= 0 else { throw Self.failure("cannot open \(path)", errno, fatal: true) }
        // Before reading anything: what another writer is doing to the files makes them a moving target.
        do {
            writerLock = try WriterLock(path: path + ".linger-lock")
        } catch {
            systemClose(dataFD)
            switch error {
            case .held(let holder):
                throw LinkSinkError(
                    "\(path) is being written by another linger serve\(WriterLock.describe(holder)); give each server its own file",
                    isRetryable: false)
            case .cannotLock(let code):
                throw Self.failure("cannot lock \(path).linger-lock", code, fatal: true)
            }
        }
        let existing: FileSinkStateLog?
        do {
            existing = try Self.readStateLog(statePath)
        } catch {
            systemClose(dataFD)
            throw error
        }
        var info = stat()
        fstat(dataFD, &info)
        identity = FileSinkStateLog.Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        let size = Int64(info.st_size)
        var log: FileSinkStateLog
        // Whether the log on disk describes this data file as it is, so that new records may follow it.
        var appendable = false
        do {
            if let existing, let recorded = existing.identity, recorded != identity, size == 0 {
                log = try continueAfterRotation(existing, recorded: recorded)
            } else if let existing {
                log = existing
                try verify(log, size: size)
                appendable = existing.identity == identity
            } else if size > 0 {
                guard adoptExisting else {
                    throw LinkSinkError(
                        "\(path) already holds \(size) bytes that linger did not write (there is no \(path).linger-state "
                            + "beside it); move it aside, or start with --adopt-existing to keep it and append after it",
                        isRetryable: false)
                }
                log = FileSinkStateLog()
                log.length = try adopt(size: size)
            } else {
                log = FileSinkStateLog()
            }
        } catch {
            systemClose(dataFD)
            throw error
        }
        committed = log.length
        // Only what this server writes and syncs is dropped from the cache: the first commit after a restart
        // does not walk a long file's earlier pages.
        cachedFrom = committed
        book = MarkBook(marks: log.marks)
        head = log.head
        stateLength = 0
        if size > committed {
            // Written but never recorded before a crash: no client was acknowledged for it, and they resend.
            guard ftruncate(dataFD, off_t(committed)) == 0 else {
                let code = errno
                systemClose(dataFD)
                throw Self.failure("cannot cut \(path) back to its last commit", code, fatal: true)
            }
            openingNotes.append("cut \(size - committed) unacknowledged bytes from the end of \(path) (a commit torn by a crash)")
        }
        // A log that already names this data file and is not yet due for compaction is continued as it is:
        // rewriting it costs two fsyncs (the new log and its directory), which on a disk busy writing back
        // was most of a restart (the two slowest of 20 restarts took 296 and 347 ms).
        if appendable, let existing, !Self.dueForCompaction(records: existing.records, streams: existing.marks.count),
            continueStateLog(validPrefix: existing.validPrefix, records: existing.records)
        {
            return
        }
        // Otherwise start with a compact log: one record per stream, and the header naming this data file.
        do {
            try rewriteStateLog(with: log)
        } catch {
            // The compaction needs room for a second copy of the log. On a full disk a server restarted by its
            // supervisor must still start (and wait for room like a running one), so it keeps the log it has.
            guard appendable, let existing, continueStateLog(validPrefix: existing.validPrefix, records: existing.records) else {
                systemClose(dataFD)
                throw error
            }
            openingNotes.append("\(error); kept \(statePath) as it was, uncompacted")
        }
    }

    /// Whether a log of `records` records for `streams` streams is worth rewriting: once it holds many more
    /// records than the one per stream a compact log needs.
    private static func dueForCompaction(records: Int, streams: Int) -> Bool {
        records > max(10_000, 2 * streams)
    }

    /// Appends to the state log on disk after its last whole record (cutting a torn one: that frees room,
    /// never needs it). Returns false if the log cannot be opened or cut.
    private func continueStateLog(validPrefix: Int, records: Int) -> Bool {
        let fd = open(statePath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        guard ftruncate(fd, off_t(validPrefix)) == 0 else {
            systemClose(fd)
            return false
        }
        stateFD = fd
        stateLength = Int64(validPrefix)
        recordsSinceCompaction = records
        return true
    }

    /// Refuses a state log that does not describe this data file: only a torn tail is ever repaired.
    private func verify(_ log: FileSinkStateLog, size: Int64) throws {
        if let recorded = log.identity, recorded != identity {
            throw LinkSinkError(
                "\(path) is not the file its state log describes (inode \(identity.inode), the log names inode "
                    + "\(recorded.inode)): it was replaced outside linger; move both files aside to start over, "
                    + "or remove \(statePath) and start with --adopt-existing", isRetryable: false)
        }
        if let head = log.head, head.length <= size, (try? fingerprint(length: head.length)) != head.hash {
            throw LinkSinkError(
                "\(path) does not begin with the bytes its state log records: it was replaced outside linger; move "
                    + "both files aside to start over, or remove \(statePath) and start with --adopt-existing",
                isRetryable: false)
        }
        if size < log.length {
            throw LinkSinkError(
                "\(path) is shorter (\(size) bytes) than its state log records (\(log.length)): data linger "
                    + "acknowledged is missing, so it was truncated outside linger (copytruncate cannot be exact: rotate "
                    + "with logrotate's create mode and kill -HUP, or --rotate-size); move both files aside to start over",
                isRetryable: false)
        }
    }

    /// The path names a new, empty file and the log describes another: the output was rotated (renamed) while
    /// the server was down, or before it recorded the switch. The old file, found beside it by its identity,
    /// keeps what was committed (a torn tail past the last record is cut there); new data starts here.
    private func continueAfterRotation(_ log: FileSinkStateLog, recorded: FileSinkStateLog.Identity) throws -> FileSinkStateLog {
        guard let rotated = RotatedOutput.find(recorded, besides: path) else {
            throw LinkSinkError(
                "\(path) is a new, empty file, and the file its state log describes (inode \(recorded.inode)) is no longer "
                    + "beside it: if it was rotated and compressed or moved, move \(statePath) aside too to start over; "
                    + "if it was deleted, the senders' marks in \(statePath) are all that is left of it", isRetryable: false)
        }
        var info = stat()
        stat(rotated, &info)
        if Int64(info.st_size) > log.length {
            let fd = open(rotated, O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                if ftruncate(fd, off_t(log.length)) == 0 {
                    openingNotes.append("cut \(Int64(info.st_size) - log.length) unacknowledged bytes from the end of \(rotated) (a commit torn by a crash)")
                }
                fsync(fd)
                systemClose(fd)
            }
        }
        openingNotes.append("\(path) was rotated to \(rotated) before this start; continuing in a new \(path)")
        var next = FileSinkStateLog()
        next.marks = log.marks
        return next
    }

    /// Keeps what the file holds as committed; ends it with a newline so the next line does not fuse with it.
    private func adopt(size: Int64) throws -> Int64 {
        var last: UInt8 = 0
        guard pread(dataFD, &last, 1, off_t(size - 1)) == 1 else { throw Self.failure("cannot read \(path)", errno, fatal: true) }
        var length = size
        if last != UInt8(ascii: "\n") {
            let newline: [UInt8] = [UInt8(ascii: "\n")]
            try newline.withUnsafeBytes { bytes throws in try writeAll(dataFD, bytes, at: size, what: path) }
            length += 1
        }
        guard fsync(dataFD) == 0 else { throw Self.failure("cannot fsync \(path)", errno, fatal: true) }
        openingNotes.append("adopted the \(size) bytes already in \(path); new lines are appended after them")
        return length
    }

    var marks: [LinkStreamKey: UInt64] { book.marks.mapValues(\.sequence) }

    func claim(clientID: String) -> LinkSinkClaim { book.claim(clientID: clientID) }

    /// Stores every admitted batch with one data write, one state write and (per policy) one fsync of each.
    func commit(_ batches: [LinkSinkBatch]) throws -> [LinkCommitOutcome] {
        if needsRepair { try repair() }
        try refuseTruncation()
        let outcomes = book.outcomes(for: batches)
        let stored = zip(batches, outcomes).filter { $0.1 == .stored && !$0.0.isEmpty }.map(\.0)
        guard !stored.isEmpty else { return outcomes }
        if dueForRotation { try rotate() }
        var length = committed
        var records = ""
        var moved: [LinkStreamKey: MarkBook.Mark] = [:]
        for batch in stored {
            length += Int64(batch.lines.readableBytes)
            let mark = (moved[batch.key] ?? book.mark(batch.key)).after(batch)
            moved[batch.key] = mark
            records += FileSinkStateLog.commitRecord(length: length, key: batch.key, mark: mark)
        }
        var newHead = head
        let syncNow: Bool
        switch policy {
        case .everyBatch: syncNow = true
        case .interval(let interval): syncNow = ContinuousClock.now - lastSync >= interval
        case .none: syncNow = false
        }
        do {
            try writeData(stored)
            if (head?.length ?? 0) < min(length, FileSinkStateLog.headLimit) {
                // While the file is short, its head grows: record it, so a replaced file is recognised.
                let covered = min(length, FileSinkStateLog.headLimit)
                newHead = (covered, try fingerprint(length: covered))
                records += FileSinkStateLog.headRecord(length: covered, hash: newHead!.hash)
            }
            if syncNow { try sync(dataFD, what: path) }
            try Array(records.utf8).withUnsafeBytes { bytes throws in
                try writeAll(stateFD, bytes, at: stateLength, what: statePath)
            }
            if syncNow { try sync(stateFD, what: statePath) }
        } catch {
            // Whatever part reached the files is not covered by an acknowledgement: cut it away now, before
            // the client resends it (it would follow the partial bytes and duplicate them).
            needsRepair = true
            try? repair()
            throw error
        }
        if syncNow {
            lastSync = .now
            forgetCachedPages(through: length)
        }
        head = newHead
        committed = length
        stateLength += Int64(records.utf8.count)
        book.apply(moved)
        recordsSinceCompaction += stored.count
        if Self.dueForCompaction(records: recordsSinceCompaction, streams: book.marks.count) {
            // Only the log is rewritten, and atomically: a failure leaves the old, longer log in place.
            try? rewriteStateLog(with: currentLog)
        }
        return outcomes
    }

    // MARK: - Rotation

    /// After the path was renamed (logrotate's `create`, then SIGHUP): continue in a new file at the path.
    /// What was committed stays in the renamed file. Returns what happened, for the log.
    func reopen() throws -> String {
        var info = stat()
        let exists = stat(path, &info) == 0
        if exists && UInt64(info.st_dev) == identity.device && UInt64(info.st_ino) == identity.inode {
            return "\(path) was not rotated; still writing it"
        }
        if exists && info.st_size > 0 {
            return "\(path) is a non-empty file linger did not write; still writing the file it was renamed from"
        }
        let held = committed
        try switchToNewFile()
        return "reopened \(path) after a rotation (the previous file holds \(held) bytes)"
    }

    private var dueForRotation: Bool {
        guard rotation.isEnabled, committed > 0 else { return false }
        if let maximum = rotation.maximumBytes, committed >= maximum { return true }
        if let interval = rotation.interval, ContinuousClock.now - openedAt >= interval { return true }
        return false
    }

    /// Built-in rotation, between two commits: rename the file, continue in a new one, record it. A crash
    /// after the rename and before the record is recognised at the next start (``continueAfterRotation``).
    private func rotate() throws {
        if policy != .none { try sync(dataFD, what: path) }
        let rotated = RotatedOutput.name(for: path)
        guard rename(path, rotated) == 0 else { throw Self.failure("cannot rename \(path) to rotate it", errno) }
        try switchToNewFile()
        let rotation = self.rotation, path = self.path
        if rotation.compress || rotation.keep != nil {
            if housekeeping == nil {
                housekeeping = NIOThreadPool(numberOfThreads: 1)
                housekeeping?.start()
            }
            housekeeping?.submit { _ in
                if rotation.compress { RotatedOutput.compress(rotated) }
                if let keep = rotation.keep { RotatedOutput.prune(path, keep: keep) }
            }
        }
    }

    private func switchToNewFile() throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("cannot open a new \(path)", errno) }
        var info = stat()
        fstat(fd, &info)
        if policy != .none { fsync(dataFD) }
        systemClose(dataFD)
        dataFD = fd
        identity = FileSinkStateLog.Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        committed = 0
        cachedFrom = 0
        head = nil
        openedAt = .now
        try rewriteStateLog(with: currentLog)
    }

    /// A data file shorter than what was committed was cut outside linger (copytruncate): writing at the
    /// committed offset would leave a hole of zeros, so the sink stops and says why.
    private func refuseTruncation() throws {
        var info = stat()
        guard fstat(dataFD, &info) == 0, Int64(info.st_size) < committed else { return }
        throw LinkSinkError(
            "\(path) was truncated outside linger (\(info.st_size) bytes, \(committed) committed): copytruncate cannot be "
                + "exact for the collector's output, because lines written between the copy and the cut are lost; rotate "
                + "with logrotate's create mode and kill -HUP (deploy/logrotate/linger-serve), or --rotate-size", isRetryable: false)
    }

    func close() {
        if let housekeeping {
            try? housekeeping.syncShutdownGracefully()
            self.housekeeping = nil
        }
        if dataFD >= 0 {
            fsync(dataFD)
            systemClose(dataFD)
            dataFD = -1
        }
        if stateFD >= 0 {
            fsync(stateFD)
            systemClose(stateFD)
            stateFD = -1
        }
        writerLock.release()
    }

    deinit { close() }

    // MARK: - Writing and repairing

    /// Group commit: every client's batch in one `pwritev`, straight from the batches' buffers. Gathering
    /// them into one buffer first copied every byte once more into freshly faulted memory (57 MB for one
    /// commit of a 32-sender run), on the sink's thread, while the disk waited.
    private func writeData(_ batches: [LinkSinkBatch]) throws {
        var parts: [UnsafeRawBufferPointer] = []
        var storages: [Unmanaged<AnyObject>] = []
        parts.reserveCapacity(batches.count)
        storages.reserveCapacity(batches.count)
        // The buffers stay alive in `batches`; retaining each storage is what NIO's own vector writes do to
        // keep the pointers valid outside the closure.
        defer { for storage in storages { storage.release() } }
        for batch in batches {
            batch.lines.withUnsafeReadableBytesWithStorageManagement { bytes, storage in
                storages.append(storage.retain())
                parts.append(bytes)
            }
        }
        try writeAll(dataFD, parts, at: committed, what: path)
    }

    /// Puts both files back at the last commit. After a failed fsync the kernel may have dropped dirty pages
    /// and forgotten the error (PostgreSQL's 2018 "fsyncgate"), so the data descriptor is reopened too.
    private func repair() throws {
        guard ftruncate(dataFD, off_t(committed)) == 0 else { throw Self.failure("cannot cut \(path) back to its last commit", errno) }
        guard ftruncate(stateFD, off_t(stateLength)) == 0 else { throw Self.failure("cannot cut \(statePath) back", errno) }
        let reopened = open(path, O_RDWR | O_CLOEXEC)
        guard reopened >= 0 else { throw Self.failure("cannot reopen \(path)", errno) }
        systemClose(dataFD)
        dataFD = reopened
        needsRepair = false
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, what: String) throws {
        try writeAll(fd, [bytes], at: offset, what: what)
    }

    /// Writes `parts` one after another from `offset`, with as few `pwritev` calls as the kernel allows
    /// (one, unless there are more than `IOV_MAX` parts or a write comes back short).
    private func writeAll(_ fd: Int32, _ parts: [UnsafeRawBufferPointer], at offset: Int64, what: String) throws {
        var limit = parts.reduce(0) { $0 + $1.count }
        var injected: Int32?
        if fd == dataFD, let fault = injectWriteFailure {
            injectWriteFailure = nil
            limit = min(limit, fault.afterBytes)
            injected = fault.errno
        }
        var vectors: [iovec] = []
        vectors.reserveCapacity(parts.count)
        var room = limit
        for part in parts where part.count > 0 && room > 0 {
            let length = min(part.count, room)
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: part.baseAddress!), iov_len: length))
            room -= length
        }
        var written = 0
        var first = 0
        while first < vectors.count {
            let count = Int32(min(vectors.count - first, Self.maximumVectors))
            let n = vectors.withUnsafeBufferPointer { pwritev(fd, $0.baseAddress! + first, count, off_t(offset) + off_t(written)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("cannot write \(what)", errno)
            }
            if n == 0 { throw Self.failure("cannot write \(what)", EIO) }  // no progress: never spin
            written += n
            // Step past what was written; a short write leaves the rest of a part for the next call.
            var left = n
            while first < vectors.count, left >= vectors[first].iov_len {
                left -= vectors[first].iov_len
                first += 1
            }
            if left > 0 {
                vectors[first].iov_base += left
                vectors[first].iov_len -= left
            }
        }
        if let injected { throw Self.failure("cannot write \(what)", injected) }
    }

    /// `IOV_MAX` on Linux and macOS (a macro Swift does not import).
    private static let maximumVectors = 1024

    /// Drops the pages of what was just written and synced from the page cache. A collector writes far more
    /// than anyone reads back soon, and these pages are clean now: keeping them would push out what the
    /// machine's other programs have cached, and taking fresh pages for every commit costs more than reusing
    /// the ones just released (PostgreSQL does the same with its WAL). A hint only: a failure changes nothing.
    /// The range starts at the page holding `cachedFrom`: its earlier bytes were synced before, and a partial
    /// page is one the kernel keeps.
    private func forgetCachedPages(through end: Int64) {
        #if canImport(Glibc)
        let first = cachedFrom - cachedFrom % Int64(Self.pageSize)
        _ = posix_fadvise(dataFD, off_t(first), off_t(end - first), POSIX_FADV_DONTNEED)
        #endif
        cachedFrom = end
    }

    private static let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 1)

    private func sync(_ fd: Int32, what: String) throws {
        if let code = injectFsyncFailure {
            injectFsyncFailure = nil
            throw Self.failure("cannot fsync \(what)", code)
        }
        guard fsync(fd) == 0 else { throw Self.failure("cannot fsync \(what)", errno) }
    }

    private var currentLog: FileSinkStateLog {
        var log = FileSinkStateLog()
        log.length = committed
        log.marks = book.marks
        log.head = head
        return log
    }

    /// The FNV-1a fingerprint of the data file's first `length` bytes.
    private func fingerprint(length: Int64) throws -> UInt64 {
        var bytes = [UInt8](repeating: 0, count: Int(length))
        let n = bytes.withUnsafeMutableBytes { pread(dataFD, $0.baseAddress, Int(length), 0) }
        guard n == Int(length) else { throw Self.failure("cannot read \(path)", n < 0 ? errno : EIO) }
        return bytes.withUnsafeBytes { FileSinkStateLog.fingerprint($0) }
    }

    /// Replaces the state log with a snapshot: write a temporary file, fsync it, rename it over the log,
    /// fsync the directory. A crash at any point leaves either the old log or the new one.
    private func rewriteStateLog(with log: FileSinkStateLog) throws {
        let text = Array(log.snapshot(identity: identity).utf8)
        let temporary = statePath + ".tmp"
        let fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("cannot write \(temporary)", errno, fatal: true) }
        do {
            try text.withUnsafeBytes { bytes throws in try writeAll(fd, bytes, at: 0, what: temporary) }
            guard fsync(fd) == 0 else { throw Self.failure("cannot fsync \(temporary)", errno) }
            guard rename(temporary, statePath) == 0 else { throw Self.failure("cannot replace \(statePath)", errno) }
        } catch {
            systemClose(fd)
            unlink(temporary)
            throw error
        }
        Self.syncDirectory(of: statePath)
        if stateFD >= 0 { systemClose(stateFD) }
        stateFD = fd
        stateLength = Int64(text.count)
        recordsSinceCompaction = 0
    }

    private static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            systemClose(fd)
        }
    }

    /// Reads the state log; nil when there is none.
    private static func readStateLog(_ path: String) throws -> FileSinkStateLog? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure("cannot read \(path)", errno, fatal: true)
        }
        defer { systemClose(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw failure("cannot read \(path)", errno, fatal: true) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return FileSinkStateLog(parsing: bytes)
    }

    /// A sink error from an errno. Space, quota, size and I/O errors may clear up, so they are retried; a
    /// descriptor or argument error will not.
    static func failure(_ what: String, _ code: Int32, fatal: Bool = false) -> LinkSinkError {
        let retryable = !fatal && ![EBADF, EINVAL, EPIPE, EISDIR, ENOENT, EACCES, EPERM].contains(code)
        return LinkSinkError("\(what): \(String(cString: strerror(code)))", isRetryable: retryable)
    }
}

@available(*, unavailable)
extension FileSinkStore: Sendable {}

/// libc's close(2), callable from types that have a `close()` of their own.
func systemClose(_ fd: Int32) {
    _ = close(fd)
}
