/// What a TCP state means, for `linger explain`: who is in it, what it waits for, which timer ends it and
/// how long that is on this machine, and what to do when many sockets sit there.
///
/// Every sentence follows FACTS.md (the kernel's behaviour, not folklore); timer lengths are computed from
/// the machine's own sysctls when they were read.
public struct StateExplanation: Sendable {
    public var state: TCPState
    /// Which end of the connection is in this state.
    public var side: String
    /// What the socket waits for.
    public var waitingFor: String
    /// Which timer ends the state, if any, and how long it runs here.
    public var timer: String
    /// What to do when many sockets sit in this state.
    public var ifMany: String

    /// The explanation of `state`, with timer lengths from `sysctls`.
    public init(_ state: TCPState, sysctls: TCPSysctls = TCPSysctls()) {
        self.state = state
        // "tcp_fin_timeout (60 s on this machine)", or the kernel default when the sysctl could not be read.
        func value(_ v: Int?, _ name: String, default d: Int, unit: String = "") -> String {
            v.map { "\(name) (\($0)\(unit) on this machine)" } ?? "\(name) (\(d)\(unit) by default)"
        }
        // RTO starts at 1 s and doubles per retry: n retries give up after 2^(n+1) - 1 seconds.
        func backoffSeconds(_ retries: Int) -> Int { retries >= 30 ? Int.max : (1 << (retries + 1)) - 1 }
        switch state {
        case .established:
            side = "Both ends of an open connection."
            waitingFor = "Data, or a FIN from either side; nothing ends this state by itself."
            timer = "None for the state. The retransmit timer runs while sent data is unacknowledged, backing off until "
                + value(sysctls.retries2, "tcp_retries2", default: 15, unit: " retransmissions")
                + " (15 is about 15 minutes) before the application gets ETIMEDOUT; TCP_USER_TIMEOUT ends it sooner. With SO_KEEPALIVE "
                + "the first probe goes after " + value(sysctls.keepaliveTime, "tcp_keepalive_time", default: 7200, unit: " s")
                + " of idle time."
            ifMany = "Normal for busy servers and pools. Compare the count per process and peer with what you expect. A peer "
                + "that vanished without a FIN or RST (host gone, link down) leaves the connection half-open: while this side "
                + "sends, the retransmissions show it (`linger doctor` reports unreachable-peer); while it is idle, nothing on "
                + "this side can tell it from a healthy connection. Only keepalive or an application heartbeat finds an idle "
                + "half-open connection, so without them it stays ESTABLISHED forever."
        case .synSent:
            side = "The client (active opener), right after connect()."
            waitingFor = "The server's SYN-ACK."
            let retries = sysctls.synRetries ?? 6
            timer = "The retransmit timer resends the SYN up to " + value(sysctls.synRetries, "tcp_syn_retries", default: 6)
                + " times; with a 1 s initial timeout doubling each time, connect() gives up after about \(backoffSeconds(retries)) s "
                + "unless the application times out first."
            ifMany = "The destination does not answer: it is down or unreachable, a firewall drops SYNs, or its listener's "
                + "queues are full. Check the destination (its linger doctor), and give connects a timeout and capped, "
                + "jittered backoff."
        case .synRecv, .newSynRecv:
            side = "The server (passive opener), inside the kernel before accept()."
            waitingFor = "The client's final ACK of the handshake. On current kernels these are request minisockets "
                + "(NEW_SYN_RECV inside the kernel; ss and /proc/net/tcp show them as SYN_RECV)."
            let retries = sysctls.synAckRetries ?? 5
            timer = "The SYN-ACK is resent up to " + value(sysctls.synAckRetries, "tcp_synack_retries", default: 5)
                + " times, giving up after about \(backoffSeconds(retries)) s."
            ifMany = "A SYN flood or clients that vanish mid-handshake. Check TcpExt TCPReqQFullDrop and "
                + "TCPReqQFullDoCookies; keep tcp_syncookies on."
        case .finWait1:
            side = "The end that closed first (active closer)."
            waitingFor = "The ACK of its FIN, often behind unacknowledged data it is still sending."
            timer = "The retransmit timer. For an orphan (the application already closed the fd), tcp_orphan_retries "
                + "bounds the retries."
            ifMany = "The peer stopped acknowledging: it is gone, or its receive window is zero. Look at send-Q and the "
                + "retransmit counts of these sockets."
        case .finWait2:
            side = "The end that closed first (active closer); its FIN was acknowledged."
            waitingFor = "The peer's FIN."
            timer = "Only if orphaned (no process holds the fd any more): the kernel drops it after "
                + value(sysctls.finTimeout, "tcp_fin_timeout", default: 60, unit: " s")
                + ". A socket still held by a process after shutdown(SHUT_WR) has no timer at all and waits forever."
            ifMany = "The peers are not closing their side, usually a CLOSE_WAIT leak over there. For held sockets, read "
                + "to EOF with a deadline after shutdown() and then close(); tcp_fin_timeout does not help them."
        case .timeWait:
            side = "The end that closed first (active closer), after the peer's FIN arrived."
            waitingFor = "Nothing but time: it absorbs late segments of the old connection so they cannot corrupt a new "
                + "one on the same four-tuple."
            timer = "60 seconds, fixed (TCP_TIMEWAIT_LEN in the kernel); no sysctl changes it, and tcp_fin_timeout has no "
                + "effect on it. An in-window ACK or retransmitted FIN restarts the 60 s."
            ifMany = "On a client, each entry holds an ephemeral port toward one destination: about range/60 s new "
                + "connections per second is the ceiling (about 470/s with the default range). Reuse connections "
                + "(keep-alive, pooling), let the server close first, add source addresses, or set tcp_tw_reuse=1 for "
                + "outgoing connections (needs timestamps; the default 2 covers loopback only). On a server port they "
                + "cost no ports, only memory. tcp_tw_recycle no longer exists (removed in Linux 4.12)."
        case .close:
            side = "A socket that is closed, or was reset."
            waitingFor = "Nothing; the socket is finished."
            timer = "None."
            ifMany = "A reset socket is unhashed, so ss, /proc/net/tcp and sock_diag stop listing it. If a process still "
                + "holds its fd (a leak after an RST), lsof shows \"can't identify protocol\" and only closing the fd frees it."
        case .closeWait:
            side = "The end that received the FIN first (passive closer)."
            waitingFor = "Its own application to call close(). The peer has finished; this side has read (or will read) EOF."
            timer = "None: CLOSE_WAIT has no kernel timer. Only close() or shutdown() by the application, or an RST (for "
                + "example in answer to a keepalive probe), ends it."
            ifMany = "The application leaks sockets: it does not close on EOF or on an error path. Fix the code to close "
                + "on every path; SO_REUSEADDR and SO_LINGER do not help, because the process never calls close(). "
                + "linger doctor names the process; --confirm proves the sockets are stuck."
        case .lastAck:
            side = "The passive closer, after it called close()."
            waitingFor = "The ACK of its FIN."
            timer = "The retransmit timer; tcp_orphan_retries bounds an orphan's retries."
            ifMany = "The peer disappeared before acknowledging (crashed, or its packets are dropped). Usually clears by itself."
        case .listen:
            side = "A server socket after listen()."
            waitingFor = "New connections; completed handshakes queue until accept()."
            timer = "None."
            ifMany = "Many listeners are fine. What matters is each accept queue: recv-Q is the number waiting and "
                + "(over netlink) send-Q the backlog. A full queue drops handshakes (TcpExt ListenOverflows); accept "
                + "faster or raise the backlog and net.core.somaxconn."
        case .closing:
            side = "Both ends closed at the same moment (simultaneous close)."
            waitingFor = "The ACK of its own FIN; the peer's FIN already arrived."
            timer = "The retransmit timer; then TIME_WAIT."
            ifMany = "Rare; many usually means ACKs are being lost on the path."
        }
    }

    /// The explanation as labelled paragraphs for the terminal.
    public var text: String {
        """
        \(state.kernelName)
          Who:          \(side)
          Waiting for:  \(waitingFor)
          Timer:        \(timer)
          If many:      \(ifMany)
        """
    }

    /// The explanation as data for `--json`.
    public var json: JSONValue {
        .object([
            ("state", .string(state.kernelName)), ("side", .string(side)), ("waitingFor", .string(waitingFor)),
            ("timer", .string(timer)), ("ifMany", .string(ifMany)),
        ])
    }
}
