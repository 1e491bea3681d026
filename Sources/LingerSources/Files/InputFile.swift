#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLingerZlib

/// A file as the filesystem knows it, whatever it is called: its device and inode. Two paths to one file
/// (a symlink, a hard link, a rename) have one key.
public struct FileKey: Sendable, Hashable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// 32 bits of it, for a stream name: enough to tell this file's stream from a copy's.
    var hint: UInt32 {
        let hash = LinkFingerprintBytes.fnv1a64(device, inode)
        return UInt32(truncatingIfNeeded: hash ^ (hash >> 32))
    }

    public var description: String { "\(device):\(inode)" }
}

/// What `stat` says of a path or descriptor, as much as a source needs.
public struct FileStatus: Sendable, Equatable {
    public var key: FileKey
    public var size: Int64
    /// Last modification, in nanoseconds since the epoch.
    public var modified: Int64
    public var isRegular: Bool
    public var isDirectory: Bool
    public var links: UInt64

    init(_ info: stat) {
        key = FileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        isRegular = (info.st_mode & S_IFMT) == S_IFREG
        isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        links = UInt64(info.st_nlink)
    }

    /// `stat(2)` of a path (following symlinks); nil when nothing is there.
    public static func of(path: String) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStatus(info)
    }

    /// Nanoseconds since the epoch, now (the clock file times are in).
    static var now: Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// An input file open for reading: plain, or gzip-compressed (a rotated `PATH.1.gz`), read from where it
/// was left. Blocking: used on ``SourceIO``'s threads only, one call at a time.
public final class InputFile: @unchecked Sendable {
    /// The path it was opened by (it may have been renamed since).
    public let path: String
    public let key: FileKey
    public let isCompressed: Bool
    private var fd: Int32 = -1
    private var gz: gzFile?
    /// A read of the gzip stream stopped inside it: zlib's position is past ``offset``.
    private var lostPosition = false
    /// The descriptor, also under gzip (which owns and closes it): for `fstat`.
    private var descriptor: Int32 = -1
    /// Bytes of content consumed (uncompressed).
    public private(set) var offset: Int64 = 0
    /// The last bytes consumed (up to 64), to notice content replaced under the same name and size.
    private var lastBytes: [UInt8] = []

    /// A gzip file that ends inside its stream: being written (logrotate compresses it now), or cut off.
    public struct Incomplete: Error, Sendable {}

    /// Opens `path`; nil when it does not exist (yet, or any more).
    /// - Throws: ``SourceError`` for any other failure (permissions, a directory).
    public static func open(_ path: String) throws -> InputFile? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw cannotOpen(path, errno)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw cannotOpen(path, code)
        }
        let status = FileStatus(info)
        if status.isDirectory {
            _ = Glibc.close(fd)
            throw isDirectory(path)
        }
        return InputFile(path: path, fd: fd, key: status.key)
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

    private init(path: String, fd: Int32, key: FileKey) {
        self.path = path
        self.key = key
        descriptor = fd
        isCompressed = path.hasSuffix(".gz")
        if isCompressed {
            // gzdopen takes the descriptor over (gzclose closes it).
            gz = gzdopen(fd, "rb")
        } else {
            self.fd = fd
        }
    }

    /// The file's state now, through the descriptor (it may have been renamed or deleted).
    public func status() -> FileStatus? {
        guard descriptor >= 0 else { return nil }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        return FileStatus(info)
    }

    /// Reads up to `count` bytes from the current offset into `buffer` and hands them to `body`.
    /// - Returns: how many bytes were read; 0 at the end (for now: a followed file may grow).
    /// - Throws: ``Incomplete`` for a gzip file that ends inside its stream.
    public func read(upTo count: Int, into buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let wanted = min(count, buffer.count)
        let n: Int
        if let gz {
            if lostPosition {
                // The last read ran into the end of an unfinished stream: start over and skip what was consumed.
                lostPosition = false
                let target = offset
                gzrewind(gz)
                offset = 0
                try seek(to: target, scratch: buffer)
            }
            n = Int(gzread(gz, buffer.baseAddress, UInt32(wanted)))
            var code: Int32 = 0
            _ = gzerror(gz, &code)
            if n < wanted && code == Z_BUF_ERROR {
                // Data up to here is real, but the stream is not finished: nothing of it counts yet.
                gzclearerr(gz)
                lostPosition = true
                throw Incomplete()
            }
            if n < 0 { throw SourceError("cannot decompress \(path): it is not a gzip file, or it is damaged") }
        } else {
            var got: Int
            repeat { got = pread(fd, buffer.baseAddress, wanted, off_t(offset)) } while got < 0 && errno == EINTR
            if got < 0 { throw SourceError("cannot read \(path): \(String(cString: strerror(errno)))") }
            n = got
        }
        offset += Int64(n)
        if n > 0 {
            let read = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<n])
            lastBytes = n >= 64 ? Array(read.suffix(64)) : Array((lastBytes + read).suffix(64))
            try body(read)
        }
        return n
    }

    /// Up to `count` bytes from the current offset; empty at the end.
    public func read(upTo count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var result: [UInt8] = []
        _ = try buffer.withUnsafeMutableBytes { raw in try read(upTo: count, into: raw) { result = Array($0) } }
        return result
    }

    /// Whether the bytes just before the offset are still those that were read. A file cut and refilled
    /// (copytruncate, then the writer going on) may already be longer than where reading stopped, so its
    /// size alone does not tell; its content does.
    public func stillHoldsWhatWasRead() -> Bool {
        guard fd >= 0, offset > 0 else { return true }
        guard let size = status()?.size, size >= offset else { return false }
        var now = [UInt8](repeating: 0, count: lastBytes.count)
        let n = now.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset) - off_t($0.count)) }
        return n == lastBytes.count && now == lastBytes
    }

    /// The first `count` bytes of the content (fewer if it is shorter), whatever the current offset.
    /// - Throws: ``Incomplete`` for a gzip file being written whose head is not there yet.
    public func head(_ count: Int) throws -> [UInt8] {
        if isCompressed {
            // Its own opening of the same file (not of the path, which may name another file by now, and not
            // a dup, which would share and move the offset gzip reads from).
            let copy = Glibc.open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC)
            guard copy >= 0, let head = gzdopen(copy, "rb") else {
                if copy >= 0 { _ = Glibc.close(copy) }
                return []
            }
            defer { gzclose(head) }
            var buffer = [UInt8](repeating: 0, count: count)
            let n = buffer.withUnsafeMutableBytes { gzread(head, $0.baseAddress, UInt32($0.count)) }
            var code: Int32 = 0
            _ = gzerror(head, &code)
            if n < count && code == Z_BUF_ERROR { throw Incomplete() }
            return n <= 0 ? [] : Array(buffer[0..<Int(n)])
        }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return n <= 0 ? [] : Array(buffer[0..<n])
    }

    /// Continues at `position` of the content: a plain file seeks, a compressed one starts over (when going
    /// back) and decompresses up to it.
    public func seek(to position: Int64, scratch: UnsafeMutableRawBufferPointer) throws {
        guard let gz else {
            offset = position
            lastBytes = []
            return
        }
        if position < offset || lostPosition {
            gzrewind(gz)
            lostPosition = false
            offset = 0
        }
        while offset < position {
            let n = try read(upTo: Int(min(Int64(scratch.count), position - offset)), into: scratch) { _ in }
            if n == 0 { break }
        }
    }

    /// Starts over at the beginning (after a truncation: the content is new).
    public func rewind() {
        if let gz { gzrewind(gz) }
        lostPosition = false
        offset = 0
        lastBytes = []
    }

    public func close() {
        descriptor = -1
        if let gz {
            gzclose(gz)
            self.gz = nil
        }
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    deinit { close() }
}

/// A source that cannot be read, in words a user can act on.
public struct SourceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

enum LinkFingerprintBytes {
    static func fnv1a64(_ values: UInt64...) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for value in values {
            for shift in stride(from: 0, to: 64, by: 8) {
                hash ^= (value >> UInt64(shift)) & 0xff
                hash = hash &* 0x0000_0100_0000_01b3
            }
        }
        return hash
    }
}
