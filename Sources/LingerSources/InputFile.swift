#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLingerZlib

/// Where a path points right now: the file's identity and size.
public struct FileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64

    /// `stat(2)` of a path; nil when nothing is there.
    public static func of(path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size))
    }

    public func isSameFile(as other: FileIdentity) -> Bool { device == other.device && inode == other.inode }
}

/// An input file open for reading: plain, or gzip-compressed (a rotated `PATH.1.gz`), read from where it
/// was left. Blocking: used on ``SourceIO``'s threads only, one call at a time.
public final class InputFile: @unchecked Sendable {
    public let path: String
    public let identity: FileIdentity
    public let isCompressed: Bool
    private var fd: Int32 = -1
    private var gz: gzFile?
    /// Bytes of content consumed (uncompressed).
    public private(set) var offset: Int64 = 0
    /// The last bytes consumed (up to 64), to notice content replaced under the same name and size.
    private var lastBytes: [UInt8] = []

    /// Opens `path`; nil when it does not exist (yet, or any more).
    /// - Throws: ``SourceError`` for any other failure (permissions, a directory).
    public static func open(_ path: String) throws -> InputFile? {
        let fd = openForReading(path)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw cannotOpen(path, errno)
        }
        var info = stat()
        fstat(fd, &info)
        if (info.st_mode & S_IFMT) == S_IFDIR {
            closeDescriptor(fd)
            throw isDirectory(path)
        }
        return InputFile(path: path, fd: fd, info: info)
    }

    /// Whether `path` exists, without opening it (opening a FIFO would wait for, then cut off, its writer).
    /// - Throws: what ``open(_:)`` would: a directory, or a file this user may not read.
    public static func checkReadable(_ path: String) throws -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return false }
            throw cannotOpen(path, errno)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw isDirectory(path) }
        if access(path, R_OK) != 0 { throw cannotOpen(path, errno) }
        return true
    }

    private static func cannotOpen(_ path: String, _ code: Int32) -> SourceError {
        SourceError("cannot open \(path): \(String(cString: strerror(code)))")
    }

    private static func isDirectory(_ path: String) -> SourceError {
        SourceError("\(path) is a directory; give files or a glob such as \(path)/*.log")
    }

    private init(path: String, fd: Int32, info: stat) {
        self.path = path
        identity = FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size))
        isCompressed = path.hasSuffix(".gz")
        if isCompressed {
            // gzdopen takes the descriptor over (gzclose closes it).
            gz = gzdopen(fd, "rb")
        } else {
            self.fd = fd
        }
    }

    /// A read buffer kept between reads: a fresh 256 KiB array per read cost the sender page faults and
    /// zeroing on every block (a sixth of its time with 1 KiB lines).
    private var scratch: [UInt8] = []

    /// Reads up to `count` bytes from the current offset into a reused buffer and hands them to `body`.
    /// - Returns: how many bytes were read; 0 at the end (for now: a followed file may grow).
    public func read(upTo count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        if scratch.count < count { scratch = [UInt8](repeating: 0, count: count) }
        let n = try fill(&scratch, count)
        try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        return n
    }

    /// Up to `count` bytes from the current offset; empty at the end (for now: a followed file may grow).
    public func read(upTo count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try fill(&buffer, count)
        return n == count ? buffer : Array(buffer[0..<n])
    }

    private func fill(_ buffer: inout [UInt8], _ count: Int) throws -> Int {
        let n: Int
        if let gz {
            n = Int(buffer.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32(count)) })
            if n < 0 { throw SourceError("cannot decompress \(path): it is not a complete gzip file") }
        } else {
            var got: Int
            repeat {
                got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            } while got < 0 && errno == EINTR
            if got < 0 { throw SourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
            n = got
        }
        offset += Int64(n)
        if n > 0 {
            lastBytes = n >= 64 ? Array(buffer[(n - 64)..<n]) : Array((lastBytes + buffer[0..<n]).suffix(64))
        }
        return n
    }

    /// Whether the bytes just before the offset are still those that were read. A file cut and refilled
    /// (copytruncate, then the writer going on) may already be longer than where reading stopped, so its
    /// size alone does not tell; its content does.
    public func stillHoldsWhatWasRead() -> Bool {
        guard fd >= 0, offset > 0 else { return true }
        guard currentSize >= offset else { return false }
        var now = [UInt8](repeating: 0, count: lastBytes.count)
        let n = now.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset) - off_t($0.count)) }
        return n == lastBytes.count && now == lastBytes
    }

    /// The first `count` bytes of the content (fewer if it is shorter), whatever the current offset.
    public func head(_ count: Int) throws -> [UInt8] {
        if isCompressed {
            guard let head = InputFile.openCompressedCopy(path) else { return [] }
            defer { gzclose(head) }
            var buffer = [UInt8](repeating: 0, count: count)
            let n = buffer.withUnsafeMutableBytes { gzread(head, $0.baseAddress, UInt32($0.count)) }
            return n <= 0 ? [] : Array(buffer[0..<Int(n)])
        }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return n <= 0 ? [] : Array(buffer[0..<n])
    }

    /// The file's size now (for a compressed file: its compressed size; it does not grow).
    public var currentSize: Int64 {
        guard fd >= 0 else { return identity.size }
        var info = stat()
        fstat(fd, &info)
        return Int64(info.st_size)
    }

    /// Starts over at the beginning (after a truncation: the content is new).
    public func rewind() {
        offset = 0
        lastBytes = []
    }

    public func close() {
        if let gz {
            gzclose(gz)
            self.gz = nil
        }
        if fd >= 0 {
            closeDescriptor(fd)
            fd = -1
        }
    }

    deinit { close() }

    private static func openCompressedCopy(_ path: String) -> gzFile? {
        let fd = openForReading(path)
        guard fd >= 0 else { return nil }
        return gzdopen(fd, "rb")
    }
}

/// A source that cannot be read, in words a user can act on.
public struct SourceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

private func openForReading(_ path: String) -> Int32 { open(path, O_RDONLY | O_CLOEXEC) }
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
