/// One process's TCP socket descriptors that point at no socket of the kernel's TCP table.
///
/// A reset (an RST from the peer, a keepalive that failed, `ss -K`) or a failed connect moves a socket to
/// CLOSE and takes it out of the table, but the socket and its descriptor live until the process closes it:
/// `ss` and `netstat` no longer show it, `lsof` says "can't identify protocol", and the process still runs
/// out of descriptors. Found by the same `/proc/PID/fd` walk that attributes owners; only descriptors whose
/// socket says it is TCP (`system.sockprotoname`) are counted, so UNIX, UDP, netlink and other families are
/// never taken for one.
public struct OrphanedSocketDescriptors: Sendable, Hashable {
    public var pid: Int32
    /// `/proc/PID/comm`.
    public var name: String
    /// The descriptors, ascending.
    public var fds: [Int32]
    /// The process's soft `RLIMIT_NOFILE` (`/proc/PID/limits`), when readable and not unlimited.
    public var openFileLimit: Int?

    public init(pid: Int32, name: String, fds: [Int32], openFileLimit: Int?) {
        self.pid = pid
        self.name = name
        self.fds = fds
        self.openFileLimit = openFileLimit
    }

    /// The share of the descriptor limit these hold, when the limit is known.
    public var shareOfLimit: Double? { openFileLimit.map { $0 > 0 ? Double(fds.count) / Double($0) : 0 } }
}
