/// One TCP socket as the kernel reports it, plus the processes that hold it when attribution was asked for.
///
/// The fields are those `ss -tanoep` shows, named as the kernel names them. A TIME_WAIT or orphaned
/// socket has inode 0 and uid 0 and never has owners: no file descriptor points at it (FACTS §0.4).
public struct SocketRecord: Sendable, Hashable {
    public var state: TCPState
    public var local: Endpoint
    public var remote: Endpoint
    /// Bytes received and not yet read by the application; on a LISTEN socket, the accept-queue length.
    public var recvQ: UInt32
    /// Bytes sent and not yet acknowledged; on a LISTEN socket (netlink only), the accept-queue limit.
    public var sendQ: UInt32
    /// The pending kernel timer, if any.
    public var timer: SocketTimer?
    /// The owning user id (0 for TIME_WAIT, request and orphaned sockets).
    public var uid: UInt32
    /// The socket's inode in sockfs: the key that links the socket to `/proc/PID/fd` entries. 0 when no
    /// file descriptor can point at it.
    public var inode: UInt64
    /// sock_diag's cookie: a stable identity across polls (0 when read from `/proc/net/tcp`).
    public var cookie: UInt64
    /// The processes holding a descriptor for this socket; empty unless attribution ran. One socket can be
    /// held by several processes (after `fork`) or several fds.
    public var owners: [SocketOwner]
    /// `tcp_info` and socket memory, when asked for (`linger sockets -i`; netlink only).
    public var info: TCPInfo?

    public init(
        state: TCPState, local: Endpoint, remote: Endpoint, recvQ: UInt32 = 0, sendQ: UInt32 = 0,
        timer: SocketTimer? = nil, uid: UInt32 = 0, inode: UInt64 = 0, cookie: UInt64 = 0,
        owners: [SocketOwner] = [], info: TCPInfo? = nil
    ) {
        self.info = info
        self.state = state
        self.local = local
        self.remote = remote
        self.recvQ = recvQ
        self.sendQ = sendQ
        self.timer = timer
        self.uid = uid
        self.inode = inode
        self.cookie = cookie
        self.owners = owners
    }

    /// Whether no process holds this socket any more: the kernel alone finishes it (`tcp_fin_timeout` for
    /// FIN_WAIT2, 60 s for TIME_WAIT). Listeners and full sockets always have an inode.
    public var isOrphan: Bool { inode == 0 }
}

/// A process holding a socket through one file descriptor.
public struct SocketOwner: Sendable, Hashable {
    public var pid: Int32
    /// The command name from `/proc/PID/comm` (at most 15 bytes, as the kernel keeps it).
    public var name: String
    public var fd: Int32

    public init(pid: Int32, name: String, fd: Int32) {
        self.pid = pid
        self.name = name
        self.fd = fd
    }
}

/// A kernel timer pending on a socket (`idiag_timer`, the `tr` column of `/proc/net/tcp`).
public struct SocketTimer: Sendable, Hashable {
    /// Which timer is armed.
    public enum Kind: UInt8, Sendable, Hashable {
        /// Retransmission, RTO, loss probe or reordering timer (also reported for request sockets).
        case retransmit = 1
        /// `sk_timer`: keepalive, or the FIN_WAIT2 timer when `tcp_fin_timeout` exceeds 60 s.
        case keepalive = 2
        /// The TIME_WAIT timer; also held by orphaned FIN_WAIT2 minisockets.
        case timeWait = 3
        /// The zero-window probe timer.
        case zeroWindowProbe = 4

        /// The name `ss -o` prints: `on`, `keepalive`, `timewait`, `persist`.
        public var name: String {
            switch self {
            case .retransmit: "on"
            case .keepalive: "keepalive"
            case .timeWait: "timewait"
            case .zeroWindowProbe: "persist"
            }
        }
    }

    public var kind: Kind
    /// Milliseconds until the timer fires (negative when already overdue).
    public var expiresInMilliseconds: Int64
    /// Retransmissions so far, or probes sent for the keepalive and zero-window timers.
    public var retransmits: UInt32

    public init(kind: Kind, expiresInMilliseconds: Int64, retransmits: UInt32) {
        self.kind = kind
        self.expiresInMilliseconds = expiresInMilliseconds
        self.retransmits = retransmits
    }
}
