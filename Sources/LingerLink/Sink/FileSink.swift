#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import NIOCore

/// Appends accepted messages to a file, one per line, and keeps the clients' high-water marks in a state
/// log beside it (`PATH.linger-state`), so a restarted server resumes exactly where it acknowledged.
///
/// Order of a store: the records are appended to the data file, (fsync per policy), then one line
/// `<data length> <client id> <sequence>` is appended to the state log, (fsync). A crash between the two
/// leaves data the state does not cover: on open, the data file is cut back to the last recorded length,
/// and the client resends those messages because they were never acknowledged. Nothing is duplicated,
/// nothing acknowledged is lost.
public final class FileSink: LinkSink, @unchecked Sendable {
    public let path: String
    public let policy: FsyncPolicy
    private let dataFD: Int32
    private let stateFD: Int32
    private var committedLength: Int64
    private var marks: [String: UInt64]
    private var lastSync: ContinuousClock.Instant

    /// Opens (creating if needed) the data file and its state log, repairing a torn tail.
    /// - Throws: ``LinkError`` naming the file and what failed.
    public init(path: String, policy: FsyncPolicy = .everyBatch) throws {
        self.path = path
        self.policy = policy
        let statePath = path + ".linger-state"
        let (length, marks) = try Self.readState(statePath)
        dataFD = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard dataFD >= 0 else { throw LinkError.io("cannot open \(path)", errno: errno) }
        stateFD = open(statePath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard stateFD >= 0 else {
            let code = errno
            Glibc.close(dataFD)
            throw LinkError.io("cannot open \(statePath)", errno: code)
        }
        var info = stat()
        fstat(dataFD, &info)
        if Int64(info.st_size) < length {
            Glibc.close(dataFD)
            Glibc.close(stateFD)
            throw LinkError.io(
                "\(path) is shorter (\(info.st_size) bytes) than its state log records (\(length)); the data was "
                    + "truncated or replaced outside linger — move both files aside to start over", errno: 0)
        }
        if Int64(info.st_size) > length {
            // Written but never acknowledged before a crash: the clients will resend it.
            ftruncate(dataFD, off_t(length))
        }
        lseek(dataFD, off_t(length), SEEK_SET)
        committedLength = length
        self.marks = marks
        lastSync = .now
    }

    public var needsRecords: Bool { true }

    public func highestAccepted(clientID: String) -> UInt64 { marks[clientID] ?? 0 }

    public func store(clientID: String, through sequence: UInt64, records: ByteBuffer) throws {
        try records.withUnsafeReadableBytes { try Self.writeAll(dataFD, $0, path: path) }
        let syncNow: Bool
        switch policy {
        case .everyBatch: syncNow = true
        case .interval(let interval): syncNow = ContinuousClock.now - lastSync >= interval
        case .none: syncNow = false
        }
        if syncNow && fsync(dataFD) != 0 { throw LinkError.io("fsync \(path)", errno: errno) }
        committedLength += Int64(records.readableBytes)
        let line = Array("\(committedLength) \(clientID) \(sequence)\n".utf8)
        try line.withUnsafeBytes { try Self.writeAll(stateFD, $0, path: path + ".linger-state") }
        if syncNow {
            if fsync(stateFD) != 0 { throw LinkError.io("fsync \(path).linger-state", errno: errno) }
            lastSync = .now
        }
        marks[clientID] = sequence
    }

    public func close() throws {
        fsync(dataFD)
        fsync(stateFD)
        Glibc.close(dataFD)
        Glibc.close(stateFD)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw LinkError.io("cannot write \(path)", errno: errno)
            }
            offset += n
        }
    }

    /// Replays the state log: the last complete line per client wins; a torn last line is ignored.
    static func readState(_ path: String) throws -> (Int64, [String: UInt64]) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return (0, [:]) }
            throw LinkError.io("cannot read \(path)", errno: errno)
        }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        var length: Int64 = 0
        var marks: [String: UInt64] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) where line.endIndex < bytes.endIndex || bytes.last == UInt8(ascii: "\n") {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 3, let l = Int64(String(decoding: fields[0], as: UTF8.self)),
                let s = UInt64(String(decoding: fields[2], as: UTF8.self))
            else { continue }
            length = l
            marks[String(decoding: fields[1], as: UTF8.self)] = s
        }
        return (length, marks)
    }
}

/// Writes accepted messages to standard output, one per line. High-water marks live in memory only, so
/// exactly-once holds while the server runs, not across its restarts.
public final class StandardOutputSink: LinkSink, @unchecked Sendable {
    private var marks: [String: UInt64] = [:]
    public init() {}
    public var needsRecords: Bool { true }
    public func highestAccepted(clientID: String) -> UInt64 { marks[clientID] ?? 0 }
    public func store(clientID: String, through sequence: UInt64, records: ByteBuffer) throws {
        try records.withUnsafeReadableBytes { try FileSink.writeAll(1, $0, path: "standard output") }
        marks[clientID] = sequence
    }
    public func close() {}
}
