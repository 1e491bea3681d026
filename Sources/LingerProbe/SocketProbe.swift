public import LingerCore

/// Reads the kernel's TCP table of the current network namespace into a ``Snapshot``.
///
/// Netlink first (sock_diag: filtered in the kernel, with cookies and listener backlogs), `/proc/net/tcp`
/// when netlink is refused or asked for; process owners from one walk of `/proc/PID/fd`, only when asked —
/// it is the expensive part (FACTS §2.9).
public struct SocketProbe: Sendable {
    /// Where the socket table comes from.
    public enum Source: String, Sendable, CaseIterable {
        /// Netlink, falling back to `/proc` when netlink is refused.
        case auto
        /// NETLINK_SOCK_DIAG only.
        case netlink
        /// `/proc/net/tcp` and `/proc/net/tcp6` only.
        case proc
    }

    /// Which sockets get their owning processes looked up.
    public enum OwnerLookup: Sendable, Equatable {
        case none
        /// Every socket with an inode.
        case all
        /// Only sockets in these states (the doctor needs owners of CLOSE_WAIT, not of TIME_WAIT), and with
        /// `retransmitting`, sockets whose data waits for a retransmission too (the unreachable-peer rule).
        case states(TCPStateSet, retransmitting: Bool = false)
    }

    public var source: Source
    /// The procfs mount to read (tests of the fallback could point elsewhere; normally `/proc`).
    public var procRoot: String

    public init(source: Source = .auto, procRoot: String = "/proc") {
        self.source = source
        self.procRoot = procRoot
    }

    /// Takes one snapshot.
    /// - Parameters:
    ///   - states: The states to read; with netlink the kernel filters, so unwanted sockets cost nothing.
    ///   - owners: Which sockets to attribute to processes.
    ///   - kernelContext: Also read counters and sysctls (the doctor needs them; a listing does not).
    ///   - tcpInfo: Read each socket's `tcp_info` and memory (netlink only; `/proc` has neither).
    ///   - orphanedDescriptors: While the owner walk runs, also find TCP descriptors whose sockets are not in
    ///     the table (``Snapshot/orphanedSocketDescriptors``); needs `states` to be `.all`.
    /// - Throws: ``ProbeError`` when neither source can be read.
    public func snapshot(
        states: TCPStateSet = .all, owners: OwnerLookup = .none, kernelContext: Bool = true, tcpInfo: Bool = false,
        orphanedDescriptors: Bool = false
    ) throws -> Snapshot {
        #if os(Linux)
        var records: [SocketRecord] = []
        let takenAt = system_clock_realtime()
        let used: SourceKind
        switch source {
        case .netlink:
            try SockDiagDump.dump(states: states, info: tcpInfo, into: &records)
            used = .netlink
        case .proc:
            try readProc(states: states, into: &records)
            used = .proc
        case .auto:
            do {
                try SockDiagDump.dump(states: states, info: tcpInfo, into: &records)
                used = .netlink
            } catch let error as ProbeError where error.code == .netlinkUnavailable {
                records.removeAll()
                try readProc(states: states, into: &records)
                used = .proc
            }
        }
        var coverage: AttributionCoverage?
        var orphaned: [OrphanedSocketDescriptors]?
        if owners != .none {
            (coverage, orphaned) = attribute(&records, owners: owners, orphanedDescriptors: orphanedDescriptors && states == .all)
        }
        var snapshot = Snapshot(
            records: records, takenAt: takenAt, source: used, attribution: coverage, orphanedSocketDescriptors: orphaned)
        if kernelContext {
            snapshot.counters = readCounters()
            snapshot.sysctls = readSysctls()
        }
        return snapshot
        #else
        throw ProbeError(.unsupportedPlatform, "reading the live socket table needs Linux; the parsers work on recorded data")
        #endif
    }

    #if os(Linux)
    private var netDirectory: String { "\(procRoot)/thread-self/net" }

    private func readProc(states: TCPStateSet, into records: inout [SocketRecord]) throws {
        let parser = ProcNetTCPParser()
        for file in ["tcp", "tcp6"] {
            let path = "\(netDirectory)/\(file)"
            let bytes: [UInt8]
            do {
                bytes = try ProcFile.bytes(path, sizeHint: 1 << 20)
            } catch let error as ProbeError where file == "tcp6" && error.errno == 2 {
                continue  // IPv6 disabled: no tcp6 file.
            }
            try bytes.withUnsafeBytes { try parser.parse($0, states: states, into: &records) }
        }
    }

    private func attribute(
        _ records: inout [SocketRecord], owners: OwnerLookup, orphanedDescriptors: Bool
    ) -> (AttributionCoverage, [OrphanedSocketDescriptors]?) {
        var wanted: Set<UInt64>?
        if case .states(let states, let retransmitting) = owners {
            wanted = Set(records.lazy.filter {
                $0.inode != 0 && (states.contains($0.state) || (retransmitting && $0.timer?.kind == .retransmit && $0.sendQ > 0))
            }.map(\.inode))
            if wanted!.isEmpty { return (AttributionCoverage(processesScanned: 0, processesDenied: 0), nil) }
        }
        let tcpInodes = orphanedDescriptors ? Set(records.lazy.filter { $0.inode != 0 }.map(\.inode)) : nil
        let result = ProcessSocketScanner(procRoot: procRoot).scan(wanted: wanted, tcpInodes: tcpInodes)
        for index in records.indices where records[index].inode != 0 {
            if let found = result.owners[records[index].inode] { records[index].owners = found }
        }
        return (result.coverage, orphanedDescriptors ? group(result.unlisted) : nil)
    }

    /// The unlisted TCP descriptors per process, keeping only processes in this network namespace (the walk
    /// sees every process on the host, and another namespace's sockets are not in this table).
    private func group(_ unlisted: [(pid: Int32, fd: Int32)]) -> [OrphanedSocketDescriptors] {
        guard !unlisted.isEmpty else { return [] }
        let ours = namespaceLink("\(procRoot)/thread-self/ns/net")
        return Dictionary(grouping: unlisted, by: \.pid).compactMap { pid, entries -> OrphanedSocketDescriptors? in
            guard let ours, namespaceLink("\(procRoot)/\(pid)/ns/net") == ours else { return nil }
            return OrphanedSocketDescriptors(
                pid: pid, name: ProcessSocketScanner.commandName(pid: pid, procRoot: procRoot) ?? "?",
                fds: entries.map(\.fd).sorted(),
                openFileLimit: ProcFile.text("\(procRoot)/\(pid)/limits").flatMap(KernelFileParsers.parseOpenFileLimit))
        }.sorted { $0.pid < $1.pid }
    }

    /// `net:[4026531840]`, the target of a `ns/net` link.
    private func namespaceLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = (try? system_readlink(path, &buffer, buffer.count).get()) ?? -1
        return length > 0 ? String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    private func readCounters() -> KernelCounters {
        var values = [String: Int64]()
        if let text = ProcFile.text("\(netDirectory)/netstat") { KernelFileParsers.parseCounterPairs(text, into: &values) }
        if let text = ProcFile.text("\(netDirectory)/snmp") { KernelFileParsers.parseCounterPairs(text, into: &values) }
        if let text = ProcFile.text("\(netDirectory)/sockstat") { KernelFileParsers.parseSockstat(text, into: &values) }
        return KernelCounters(values)
    }

    private func readSysctls() -> TCPSysctls {
        let ipv4 = "\(procRoot)/sys/net/ipv4"
        var sysctls = TCPSysctls()
        sysctls.localPortRange = ProcFile.text("\(ipv4)/ip_local_port_range").flatMap(KernelFileParsers.parsePortRange)
        if let range = sysctls.localPortRange, let reserved = ProcFile.text("\(ipv4)/ip_local_reserved_ports") {
            sysctls.reservedPortCount = KernelFileParsers.reservedPortCount(reserved, within: range)
        }
        sysctls.finTimeout = ProcFile.integer("\(ipv4)/tcp_fin_timeout")
        sysctls.twReuse = ProcFile.integer("\(ipv4)/tcp_tw_reuse")
        sysctls.maxTimeWaitBuckets = ProcFile.integer("\(ipv4)/tcp_max_tw_buckets")
        sysctls.somaxconn = ProcFile.integer("\(procRoot)/sys/net/core/somaxconn")
        sysctls.maxOrphans = ProcFile.integer("\(ipv4)/tcp_max_orphans")
        sysctls.timestamps = ProcFile.integer("\(ipv4)/tcp_timestamps")
        sysctls.synRetries = ProcFile.integer("\(ipv4)/tcp_syn_retries")
        sysctls.synAckRetries = ProcFile.integer("\(ipv4)/tcp_synack_retries")
        sysctls.keepaliveTime = ProcFile.integer("\(ipv4)/tcp_keepalive_time")
        sysctls.retries2 = ProcFile.integer("\(ipv4)/tcp_retries2")
        return sysctls
    }
    #endif

    /// The kernel's size of one TIME_WAIT socket (`tw_sock_TCP` in `/proc/slabinfo`, readable by root), or
    /// `nil` when it cannot be read.
    public func timeWaitSocketBytes() -> Int? {
        #if os(Linux)
        guard let text = ProcFile.text("\(procRoot)/slabinfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("tw_sock_TCP ") {
            let fields = line.split(separator: " ")
            if fields.count > 3, let size = Int(fields[3]) { return size }
        }
        #endif
        return nil
    }

    /// Reads only the sysctls (for `linger explain`, which needs no socket table).
    public func sysctls() -> TCPSysctls {
        #if os(Linux)
        return readSysctls()
        #else
        return TCPSysctls()
        #endif
    }
}
