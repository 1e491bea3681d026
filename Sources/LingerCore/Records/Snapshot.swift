/// One reading of a network namespace's TCP table, with the kernel counters and settings that explain it.
///
/// The doctor's rules take a snapshot and nothing else, which is why it carries counters and sysctls
/// beside the sockets: a rule can then be tested with a hand-made snapshot and no kernel.
public struct Snapshot: Sendable {
    /// The sockets, in the order the kernel returned them.
    public var records: [SocketRecord]
    /// When the table was read, in seconds since the Unix epoch.
    public var takenAt: Double
    /// Where the records came from (`netlink` or `proc`), for output and for rules that need netlink-only data.
    public var source: SourceKind
    /// Named kernel counters (`TcpExt:ListenOverflows`, `Tcp:ActiveOpens`, `sockstat:tw`, ...).
    public var counters: KernelCounters
    /// The sysctls that decide how long sockets live and how many ports there are.
    public var sysctls: TCPSysctls
    /// Whether process owners were looked up, and how far that reached.
    public var attribution: AttributionCoverage?
    /// TCP socket descriptors that point at no socket of the table (reset or failed connections a process
    /// never closed), per process; nil when the owner walk that finds them did not run.
    public var orphanedSocketDescriptors: [OrphanedSocketDescriptors]?

    public init(
        records: [SocketRecord], takenAt: Double = 0, source: SourceKind = .netlink,
        counters: KernelCounters = KernelCounters(), sysctls: TCPSysctls = TCPSysctls(),
        attribution: AttributionCoverage? = nil, orphanedSocketDescriptors: [OrphanedSocketDescriptors]? = nil
    ) {
        self.orphanedSocketDescriptors = orphanedSocketDescriptors
        self.records = records
        self.takenAt = takenAt
        self.source = source
        self.counters = counters
        self.sysctls = sysctls
        self.attribution = attribution
    }

    /// Socket counts per state, over every state (zero where none).
    public var countsByState: [TCPState: Int] {
        var counts = [TCPState: Int]()
        for state in TCPState.allCases { counts[state] = 0 }
        for record in records { counts[record.state, default: 0] += 1 }
        return counts
    }
}

/// The data source a snapshot was read from.
public enum SourceKind: String, Sendable, Hashable {
    /// NETLINK_SOCK_DIAG, the path `ss` takes: fast, filtered in the kernel, with cookies and listener backlogs.
    case netlink
    /// `/proc/net/tcp` and `/proc/net/tcp6`, the path `netstat` takes: slower, no backlog limits, no cookies.
    case proc
}

/// How much of the process table the owner lookup could read.
public struct AttributionCoverage: Sendable, Hashable {
    /// Processes whose fd table was read.
    public var processesScanned: Int
    /// Processes whose fd table could not be read (another user's process without root, or gone mid-scan).
    public var processesDenied: Int

    public init(processesScanned: Int, processesDenied: Int) {
        self.processesScanned = processesScanned
        self.processesDenied = processesDenied
    }
}

/// Kernel counters by qualified name: `TcpExt:ListenOverflows` from `/proc/net/netstat`, `Tcp:ActiveOpens`
/// from `/proc/net/snmp`, `sockstat:tw` from `/proc/net/sockstat`.
public struct KernelCounters: Sendable, Hashable {
    public var values: [String: Int64]

    public init(_ values: [String: Int64] = [:]) { self.values = values }

    public subscript(name: String) -> Int64? { values[name] }
}

/// The TCP settings of the namespace, each `nil` when it could not be read.
public struct TCPSysctls: Sendable, Hashable {
    /// `net.ipv4.ip_local_port_range`: the ephemeral ports connect() may pick from.
    public var localPortRange: ClosedRange<Int>?
    /// How many of those ports `net.ipv4.ip_local_reserved_ports` takes away.
    public var reservedPortCount: Int
    /// `net.ipv4.tcp_fin_timeout`, seconds an orphaned FIN_WAIT2 socket is kept.
    public var finTimeout: Int?
    /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only (the default).
    public var twReuse: Int?
    /// `net.ipv4.tcp_max_tw_buckets`: TIME_WAIT sockets allowed before they are dropped.
    public var maxTimeWaitBuckets: Int?
    /// `net.core.somaxconn`: the cap on every listen() backlog.
    public var somaxconn: Int?
    /// `net.ipv4.tcp_max_orphans`.
    public var maxOrphans: Int?
    /// `net.ipv4.tcp_timestamps`: needed for `tcp_tw_reuse` to apply.
    public var timestamps: Int?
    /// `net.ipv4.tcp_syn_retries`: how often connect() resends its SYN before failing.
    public var synRetries: Int?
    /// `net.ipv4.tcp_synack_retries`: how often a listener resends SYN-ACK for a half-open handshake.
    public var synAckRetries: Int?
    /// `net.ipv4.tcp_keepalive_time`: idle seconds before the first keepalive probe (with SO_KEEPALIVE).
    public var keepaliveTime: Int?
    /// `net.ipv4.tcp_retries2`: retransmissions of unacknowledged data before the kernel gives up on a
    /// connection and the application gets ETIMEDOUT (15: about 15 minutes with a 200 ms minimum RTO).
    public var retries2: Int?

    public init(
        localPortRange: ClosedRange<Int>? = nil, reservedPortCount: Int = 0, finTimeout: Int? = nil,
        twReuse: Int? = nil, maxTimeWaitBuckets: Int? = nil, somaxconn: Int? = nil, maxOrphans: Int? = nil,
        timestamps: Int? = nil, synRetries: Int? = nil, synAckRetries: Int? = nil, keepaliveTime: Int? = nil,
        retries2: Int? = nil
    ) {
        self.retries2 = retries2
        self.localPortRange = localPortRange
        self.reservedPortCount = reservedPortCount
        self.finTimeout = finTimeout
        self.twReuse = twReuse
        self.maxTimeWaitBuckets = maxTimeWaitBuckets
        self.somaxconn = somaxconn
        self.maxOrphans = maxOrphans
        self.timestamps = timestamps
        self.synRetries = synRetries
        self.synAckRetries = synAckRetries
        self.keepaliveTime = keepaliveTime
    }

    /// Ephemeral ports connect() can use toward one destination: the range less the reserved ports.
    public var usableEphemeralPorts: Int? {
        localPortRange.map { max(0, $0.count - reservedPortCount) }
    }
}
