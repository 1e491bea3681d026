/// TIME_WAIT building up: toward one destination it eats ephemeral ports (FACTS §0.5, §2.8); on a server
/// port it costs only memory and table slots; across the namespace it can hit `tcp_max_tw_buckets`.
public struct TimeWaitPressure: DiagnosisRule {
    public let id = "time-wait"
    public let needsOwners = false
    public init() {}

    /// The 3-tuple an ephemeral port must be unique within (`__inet_check_established`).
    struct Destination: Hashable {
        var local: IPAddress
        var remote: IPAddress
        var remotePort: UInt16
    }

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let snapshot = context.snapshot
        let sysctls = snapshot.sysctls
        let listenerPorts = Set(snapshot.records.lazy.filter { $0.state == .listen }.map(\.local.port))
        let ephemeral = sysctls.localPortRange ?? 32768...60999

        func isServerSide(_ r: SocketRecord) -> Bool {
            listenerPorts.contains(r.local.port)
                || (!ephemeral.contains(Int(r.local.port)) && ephemeral.contains(Int(r.remote.port)))
        }

        var findings: [Finding] = []
        var timeWaitByDestination = [Destination: Int]()
        var occupancy = [Destination: Int]()
        var timeWaitByServerPort = [UInt16: [SocketRecord]]()
        var timeWaitTotal = 0
        for record in snapshot.records where record.state != .listen {
            if isServerSide(record) {
                if record.state == .timeWait { timeWaitByServerPort[record.local.port, default: []].append(record) }
                if record.state == .timeWait { timeWaitTotal += 1 }
                continue
            }
            let key = Destination(local: record.local.address, remote: record.remote.address, remotePort: record.remote.port)
            occupancy[key, default: 0] += 1
            if record.state == .timeWait {
                timeWaitByDestination[key, default: 0] += 1
                timeWaitTotal += 1
            }
        }

        if let usable = sysctls.usableEphemeralPorts, usable > 0 {
            for (destination, timeWait) in timeWaitByDestination.sorted(by: { $0.value > $1.value }) {
                let used = occupancy[destination] ?? timeWait
                let share = Double(used) / Double(usable)
                guard share >= context.thresholds.portShareWarning else { continue }
                findings.append(
                    portFinding(destination, timeWait: timeWait, used: used, usable: usable, share: share, context: context)
                )
            }
        }

        for (port, sockets) in timeWaitByServerPort.sorted(by: { $0.value.count > $1.value.count })
        where sockets.count >= context.thresholds.serverTimeWaitInfo {
            let clients = topCounts(sockets.map(\.remote.address), limit: 5, describe: \.description)
            findings.append(
                Finding(
                    id: "time-wait-server", severity: .info,
                    summary: "\(sockets.count) TIME_WAIT sockets on server port \(port): this host closes first",
                    evidence: .object([
                        ("localPort", .number(port)), ("count", .number(sockets.count)),
                        ("closesFirst", .string("server")), ("topClients", countsJSON(clients, keyName: "address")),
                    ]),
                    evidenceLines: [
                        "\(sockets.count) TIME_WAIT on local port \(port), which has a listener",
                        "top clients: \(countsText(clients))",
                    ],
                    cause: "The server side sends the first FIN on port \(port), so the TIME_WAIT lands here; it costs no ports "
                        + "(each entry is unique by the client's address and port), only memory and table slots.",
                    remedy: "Usually harmless. To move TIME_WAIT onto the clients, let them close first (HTTP keep-alive with "
                        + "client-side idle timeouts, or a GOAWAY-style 'close after this' message); keep connections "
                        + "open for reuse instead of one per request."
                )
            )
        }

        let sockstatTimeWait = snapshot.counters["sockstat:tw"].map(Int.init) ?? timeWaitTotal
        if let buckets = sysctls.maxTimeWaitBuckets, buckets > 0 {
            let share = Double(sockstatTimeWait) / Double(buckets)
            if share >= context.thresholds.timeWaitBucketShareWarning {
                findings.append(
                    Finding(
                        id: "time-wait-buckets", severity: .warning,
                        summary: "\(sockstatTimeWait) TIME_WAIT sockets, \(percent(share)) of tcp_max_tw_buckets (\(buckets))",
                        evidence: .object([("timeWait", .number(sockstatTimeWait)), ("maxTimeWaitBuckets", .number(buckets))]),
                        evidenceLines: ["sockstat tw \(sockstatTimeWait) of tcp_max_tw_buckets \(buckets)"],
                        cause: "Past tcp_max_tw_buckets the kernel closes connections without TIME_WAIT (counted in "
                            + "TCPTimeWaitOverflow), so late segments of an old connection can be taken for a new one.",
                        remedy: "Reduce the rate of short connections (keep-alive, pooling). Do not lower the limit: the kernel "
                            + "documentation says it must not be lowered artificially."
                    )
                )
            }
        }
        if let overflow = snapshot.counters["TcpExt:TCPTimeWaitOverflow"], overflow > 0 {
            findings.append(
                Finding(
                    id: "time-wait-overflow", severity: .warning,
                    summary: "TCPTimeWaitOverflow is \(overflow): connections were closed without TIME_WAIT",
                    evidence: .object([("TCPTimeWaitOverflow", .int(overflow)), ("timeWait", .number(sockstatTimeWait))]),
                    evidenceLines: ["TcpExt TCPTimeWaitOverflow = \(overflow) since the namespace started"],
                    cause: "tcp_max_tw_buckets was reached (or allocation failed) at least \(overflow) times, and each time "
                        + "a closing connection skipped TIME_WAIT.",
                    remedy: "Cut the rate of short-lived connections (keep-alive, pooling, letting clients close first); "
                        + "raise tcp_max_tw_buckets only if memory allows."
                )
            )
        }
        return findings
    }

    private func portFinding(
        _ destination: Destination, timeWait: Int, used: Int, usable: Int, share: Double, context: DiagnosisContext
    ) -> Finding {
        let sysctls = context.snapshot.sysctls
        let rate = Double(timeWait) / Double(LinuxTCP.timeWaitSeconds)
        let ceiling = Double(usable) / Double(LinuxTCP.timeWaitSeconds)
        let target = Endpoint(address: destination.remote, port: destination.remotePort)
        let reuseMode = sysctls.twReuse
        let reuseApplies = sysctls.timestamps != 0
            && (reuseMode == 1 || (reuseMode == 2 && destination.remote.isLoopback))
        let recycled = context.snapshot.counters["TcpExt:TWRecycled"]
        // With reuse, connect() can still find a port (one whose TIME_WAIT is over 1 s old), so the range
        // running full is a slowdown, not yet a failure: never critical.
        let severity: Severity = share >= context.thresholds.portShareCritical && !reuseApplies ? .critical : .warning
        var lines = [
            "\(timeWait) TIME_WAIT (\(used) sockets in all) from \(destination.local) to \(target): "
                + "\(percent(share)) of \(usable) usable ephemeral ports",
            "this host closes first (it is the client here); at least \(Int(rate.rounded())) new connections/s over "
                + "the last \(LinuxTCP.timeWaitSeconds) s, against a ceiling of about \(Int(ceiling)) /s without reuse",
        ]
        var reuseText = "tcp_tw_reuse=\(reuseMode.map(String.init) ?? "?")"
        if reuseApplies {
            reuseText += " applies to this destination: connect() may take over a TIME_WAIT port whose last timestamp "
                + "is over 1 s old (TWRecycled counts it\(recycled.map { ", now \($0)" } ?? ""))"
        } else {
            reuseText += " does not apply to this destination"
        }
        lines.append(reuseText)
        return Finding(
            id: "time-wait-ports", severity: severity,
            summary: "\(percent(share)) of ephemeral ports toward \(target) are in use (\(timeWait) in TIME_WAIT)",
            evidence: .object([
                ("localAddress", .string(destination.local.description)),
                ("remoteAddress", .string(destination.remote.description)),
                ("remotePort", .number(destination.remotePort)),
                ("timeWait", .number(timeWait)),
                ("inUse", .number(used)),
                ("usablePorts", .number(usable)),
                ("share", .double((share * 1000).rounded() / 1000)),
                ("connectionsPerSecond", .double((rate * 10).rounded() / 10)),
                ("sustainablePerSecond", .double((ceiling * 10).rounded() / 10)),
                ("closesFirst", .string("client")),
                ("twReuse", reuseMode.map { .number($0) } ?? .null),
                ("twReuseApplies", .bool(reuseApplies)),
            ]),
            evidenceLines: lines,
            cause: "Each connection this host closes first leaves its ephemeral port in TIME_WAIT for "
                + "\(LinuxTCP.timeWaitSeconds) s (fixed in Linux), and a port is unique per destination, so opening new "
                + "connections faster than about \(Int(ceiling))/s to \(target) runs the range dry; then connect() fails "
                + "with EADDRNOTAVAIL"
                + (reuseApplies
                    ? " unless tcp_tw_reuse can take over a TIME_WAIT port, and every connect() scans past the busy ports first."
                    : "."),
            remedy: "Reuse connections (keep-alive, a connection pool) instead of one per request; let the server close "
                + "first where the protocol allows; add source addresses or widen ip_local_port_range; enable "
                + "tcp_tw_reuse=1 for outgoing connections (needs tcp_timestamps). tcp_fin_timeout does not shorten "
                + "TIME_WAIT, and tcp_tw_recycle no longer exists (removed in Linux 4.12)."
        )
    }
}
