#if os(Linux)
@preconcurrency import Glibc
import Dispatch
import LingerCore
import Synchronization

/// Maps socket inodes to the processes holding them by walking `/proc/PID/fd` once, as `ss -p` does
/// (`user_ent_hash_build` in `misc/ss.c`), but with one hash table sized for the job so the cost stays
/// linear in the number of fds, and with the walk shared among the CPUs: it is one `readlink` per fd,
/// and with 75,000 fds those system calls are most of the time `linger sockets -p` takes.
struct ProcessSocketScanner {
    var procRoot = "/proc"

    struct Result {
        var owners: [UInt64: [SocketOwner]]
        var coverage: AttributionCoverage
        /// TCP descriptors whose inode is not among `tcpInodes`, as (pid, fd); empty unless asked for.
        var unlisted: [(pid: Int32, fd: Int32)] = []
    }

    /// What one worker found; each worker writes only its own slot.
    private final class WorkerResults: @unchecked Sendable {
        var found: [[(UInt64, SocketOwner)]]
        var unlisted: [[(pid: Int32, fd: Int32)]]
        var scanned: [Int]
        var denied: [Int]
        init(workers: Int) {
            found = Array(repeating: [], count: workers)
            unlisted = Array(repeating: [], count: workers)
            scanned = Array(repeating: 0, count: workers)
            denied = Array(repeating: 0, count: workers)
        }
    }

    /// Finds the owners of `wanted` inodes (all socket inodes when `wanted` is nil). With `tcpInodes` (every
    /// inode of the TCP table), it also lists the TCP descriptors whose socket is not in it: the walk reads
    /// every fd anyway, and only descriptors of sockets outside the table cost one `getxattr` more.
    func scan(wanted: Set<UInt64>?, tcpInodes: Set<UInt64>? = nil) -> Result {
        let pids = listProcesses()
        let workers = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 8, pids.count))
        let results = WorkerResults(workers: workers)
        let next = Atomic<Int>(0)
        let procRoot = self.procRoot
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var link = [CChar](repeating: 0, count: 64)
            var found: [(UInt64, SocketOwner)] = []
            var unlisted: [(pid: Int32, fd: Int32)] = []
            var scanned = 0, denied = 0
            while true {
                // Processes are handed out one at a time, so a few huge ones do not pile onto one worker.
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < pids.count else { break }
                let pid = pids[index]
                switch system_opendir("\(procRoot)/\(pid)/fd") {
                case .failure(let error):
                    if error.code == EACCES || error.code == EPERM { denied += 1 }
                case .success(let fds):
                    scanned += 1
                    Self.scanDescriptors(
                        fds, pid: pid, procRoot: procRoot, wanted: wanted, tcpInodes: tcpInodes, link: &link,
                        into: &found, unlisted: &unlisted)
                    system_closedir(fds)
                }
            }
            results.found[worker] = found
            results.unlisted[worker] = unlisted
            results.scanned[worker] = scanned
            results.denied[worker] = denied
        }
        var owners = [UInt64: [SocketOwner]]()
        owners.reserveCapacity(results.found.reduce(0) { $0 + $1.count })
        for batch in results.found {
            for (inode, owner) in batch { owners[inode, default: []].append(owner) }
        }
        return Result(
            owners: owners,
            coverage: AttributionCoverage(
                processesScanned: results.scanned.reduce(0, +), processesDenied: results.denied.reduce(0, +)),
            unlisted: results.unlisted.flatMap { $0 })
    }

    /// The numeric entries of `/proc`.
    private func listProcesses() -> [Int32] {
        guard case .success(let proc) = system_opendir(procRoot) else { return [] }
        defer { system_closedir(proc) }
        var pids: [Int32] = []
        while let entry = system_readdir(proc) {
            if let pid = Self.number(of: entry) { pids.append(pid) }
        }
        return pids
    }

    private static func scanDescriptors(
        _ fds: OpaquePointer, pid: Int32, procRoot: String, wanted: Set<UInt64>?, tcpInodes: Set<UInt64>?,
        link: inout [CChar], into found: inout [(UInt64, SocketOwner)], unlisted: inout [(pid: Int32, fd: Int32)]
    ) {
        var name: String?
        let dirFD = system_dirfd(fds)
        while let fdEntry = system_readdir(fds) {
            guard let fd = number(of: fdEntry) else { continue }
            let length: Int = withUnsafeMutablePointer(to: &fdEntry.pointee.d_name) { namePointer in
                namePointer.withMemoryRebound(to: CChar.self, capacity: 256) { cName in
                    link.withUnsafeMutableBufferPointer { buffer in
                        (try? system_readlinkat(dirFD, cName, buffer.baseAddress!, buffer.count).get()) ?? -1
                    }
                }
            }
            guard length > 0, let inode = socketInode(link, length: length) else { continue }
            if let tcpInodes, !tcpInodes.contains(inode), isTCP("\(procRoot)/\(pid)/fd/\(fd)") {
                unlisted.append((pid, fd))
            }
            if let wanted, !wanted.contains(inode) { continue }
            if name == nil { name = commandName(pid: pid, procRoot: procRoot) }
            found.append((inode, SocketOwner(pid: pid, name: name ?? "?", fd: fd)))
        }
    }

    /// Whether the socket behind `/proc/PID/fd/N` is TCP (`system.sockprotoname` is `TCP` or `TCPv6`), which
    /// keeps UNIX, UDP, netlink, packet and every other family out.
    private static func isTCP(_ path: String) -> Bool {
        var name = [UInt8](repeating: 0, count: 16)
        let length = name.withUnsafeMutableBytes { (try? system_getxattr(path, "system.sockprotoname", $0.baseAddress!, $0.count).get()) ?? -1 }
        guard length >= 3 else { return false }
        let text = name.prefix(length).prefix { $0 != 0 }
        return text.elementsEqual("TCP".utf8) || text.elementsEqual("TCPv6".utf8)
    }

    /// A directory entry's name as a number when it is all digits; `nil` for `self`, `.`, ...
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
        guard length >= 10, link[0] == 0x73, link[1] == 0x6F, link[2] == 0x63, link[3] == 0x6B,
            link[6] == 0x3A, link[7] == 0x5B, link[length - 1] == 0x5D
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
