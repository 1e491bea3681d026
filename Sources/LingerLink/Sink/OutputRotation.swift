#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLingerZlib

/// When and how a file sink rotates its own output (for hosts without logrotate).
public struct OutputRotation: Sendable, Equatable {
    /// Rotate before a commit once the file holds this many bytes (a commit is never split, so a file may
    /// exceed it by one commit).
    public var maximumBytes: Int64?
    /// Rotate before a commit once the file has been written for this long (since it was opened).
    public var interval: Duration?
    /// Rotated files kept; older ones are deleted (nil: keep all).
    public var keep: Int?
    /// gzip rotated files (`PATH-YYYYMMDD-HHMMSS.gz`), off the sink's thread.
    public var compress: Bool

    public init(maximumBytes: Int64? = nil, interval: Duration? = nil, keep: Int? = nil, compress: Bool = false) {
        self.maximumBytes = maximumBytes
        self.interval = interval
        self.keep = keep
        self.compress = compress
    }

    var isEnabled: Bool { maximumBytes != nil || interval != nil }
}

/// The file operations of rotation: names, the search for a renamed file, compression, pruning.
enum RotatedOutput {
    /// `PATH-YYYYMMDD-HHMMSS` (UTC), with `-2`, `-3`… when that name is taken.
    static func name(for path: String) -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y%m%d-%H%M%S", &parts)
        let stamp = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var candidate = "\(path)-\(stamp)"
        var n = 2
        while access(candidate, F_OK) == 0 || access(candidate + ".gz", F_OK) == 0 {
            candidate = "\(path)-\(stamp)-\(n)"
            n += 1
        }
        return candidate
    }

    /// The file in `path`'s directory whose identity is `identity` (a data file renamed by a rotation).
    static func find(_ identity: FileSinkStateLog.Identity, besides path: String) -> String? {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        guard let stream = opendir(directory) else { return nil }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            let full = directory == "/" ? "/" + name : directory + "/" + name
            var info = stat()
            if stat(full, &info) == 0, UInt64(info.st_dev) == identity.device, UInt64(info.st_ino) == identity.inode { return full }
        }
        return nil
    }

    /// gzip `path` to `path.gz` (through a temporary name, so a crash leaves the original), then remove it.
    static func compress(_ path: String) {
        let temporary = path + ".gz.tmp"
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return }
        defer { _ = close(input) }
        guard let output = gzopen(temporary, "wb6") else { return }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var ok = true
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = n == 0; break }
            if buffer.withUnsafeBytes({ gzwrite(output, $0.baseAddress, UInt32(n)) }) != Int32(n) { ok = false; break }
        }
        ok = gzclose(output) == Z_OK && ok
        guard ok else {
            unlink(temporary)
            return
        }
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            _ = close(fd)
        }
        if rename(temporary, path + ".gz") == 0 { unlink(path) }
    }

    /// Deletes the oldest rotated files of `path` beyond `keep` (names sort by time).
    static func prune(_ path: String, keep: Int) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let stream = opendir(directory) else { return }
        var rotated: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            let rest = name.dropFirst(base.count)
            if name.hasPrefix(base + "-"), rest.count >= 16, rest.dropFirst().prefix(8).allSatisfy(\.isNumber), !name.hasSuffix(".tmp") {
                rotated.append(name)
            }
        }
        closedir(stream)
        for name in rotated.sorted().dropLast(max(0, keep)) { unlink(directory + "/" + name) }
    }
}
