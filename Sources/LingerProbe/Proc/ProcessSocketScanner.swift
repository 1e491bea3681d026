#if os(Linux)
@preconcurrency import Glibc
import LingerCore

/// Maps socket inodes to the processes holding them by walking `/proc/PID/fd` once, as `ss -p` does
/// (`user_ent_hash_build` in `misc/ss.c`) but with one hash table sized for the job, so the cost stays
/// linear in the number of fds.
struct ProcessSocketScanner {
    var procRoot = "/proc"

    struct Result {
        var owners: [UInt64: [SocketOwner]]
        var coverage: AttributionCoverage
    }

    /// Finds the owners of `wanted` inodes (all socket inodes when `wanted` is nil).
    func scan(wanted: Set<UInt64>?) -> Result {
        var owners = [UInt64: [SocketOwner]]()
        if let wanted { owners.reserveCapacity(wanted.count) }
        var scanned = 0, denied = 0
        guard case .success(let proc) = system_opendir(procRoot) else {
            return Result(owners: [:], coverage: AttributionCoverage(processesScanned: 0, processesDenied: 0))
        }
        defer { system_closedir(proc) }
        let procFD = system_dirfd(proc)
        var link = [CChar](repeating: 0, count: 64)
        var pidPath = [CChar](repeating: 0, count: 32)

        while let entry = system_readdir(proc) {
            guard let pid = Self.pid(of: entry) else { continue }
            // "<pid>/fd" relative to /proc, opened with openat so no path string is built per process.
            let fdDirectory: Int32? = pidPath.withUnsafeMutableBufferPointer { path in
                let text = "\(pid)/fd"
                var i = 0
                for byte in text.utf8 { path[i] = CChar(bitPattern: byte); i += 1 }
                path[i] = 0
                switch system_openat(procFD, path.baseAddress!, O_RDONLY | O_DIRECTORY) {
                case .success(let fd): return fd
                case .failure(let error):
                    if error.code == EACCES || error.code == EPERM { denied += 1 }
                    return nil
                }
            }
            guard let fdDirectory, case .success(let fds) = system_fdopendir(fdDirectory) else { continue }
            scanned += 1
            var name: String?
            let dirFD = system_dirfd(fds)
            while let fdEntry = system_readdir(fds) {
                guard let fd = Self.number(of: fdEntry) else { continue }
                let length: Int = withUnsafeMutablePointer(to: &fdEntry.pointee.d_name) { namePointer in
                    namePointer.withMemoryRebound(to: CChar.self, capacity: 256) { cName in
                        link.withUnsafeMutableBufferPointer { buffer in
                            (try? system_readlinkat(dirFD, cName, buffer.baseAddress!, buffer.count).get()) ?? -1
                        }
                    }
                }
                guard length > 0, let inode = Self.socketInode(link, length: length) else { continue }
                if let wanted, !wanted.contains(inode) { continue }
                if name == nil { name = Self.commandName(pid: pid, procRoot: procRoot) }
                owners[inode, default: []].append(SocketOwner(pid: pid, name: name ?? "?", fd: fd))
            }
            system_closedir(fds)
        }
        return Result(owners: owners, coverage: AttributionCoverage(processesScanned: scanned, processesDenied: denied))
    }

    /// The entry's name as a pid when it is all digits (processes); `nil` for `self`, `sys`, ...
    private static func pid(of entry: UnsafeMutablePointer<dirent>) -> Int32? {
        number(of: entry).map { Int32($0) }
    }

    private static func number(of entry: UnsafeMutablePointer<dirent>) -> Int32? {
        withUnsafeBytes(of: &entry.pointee.d_name) { raw -> Int32? in
            var value: Int32 = 0
            var index = 0
            while index < raw.count, raw[index] != 0 {
                let c = raw[index]
                guard c >= 48 && c <= 57 else { return nil }
                value = value &* 10 &+ Int32(c - 48)
                index += 1
            }
            return index == 0 ? nil : value
        }
    }

    /// `socket:[12345]` → 12345; any other link target → nil.
    private static func socketInode(_ link: [CChar], length: Int) -> UInt64? {
        // "socket:[" is 8 bytes; the shortest link is "socket:[1]".
        guard length >= 10, link[0] == 0x73, link[6] == 0x3A, link[7] == 0x5B, link[length - 1] == 0x5D,
            link[1] == 0x6F, link[2] == 0x63, link[3] == 0x6B
        else { return nil }
        var value: UInt64 = 0
        for i in 8..<(length - 1) {
            let c = UInt8(bitPattern: link[i])
            guard c >= 48 && c <= 57 else { return nil }
            value = value * 10 + UInt64(c - 48)
        }
        return value
    }

    /// `/proc/PID/comm` without its newline (what `ss -p` prints as the process name).
    static func commandName(pid: Int32, procRoot: String) -> String? {
        ProcFile.text("\(procRoot)/\(pid)/comm").map { String($0.trimmingCharacters(in: "\n")) }
    }
}
#endif
