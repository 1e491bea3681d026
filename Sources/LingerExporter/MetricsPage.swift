import LingerCore
import Prometheus

/// One scrape's worth of metrics, built into a fresh registry every time, so a process or destination
/// that went away leaves no stale series behind. Cardinality is bounded: the top ``topN`` processes and
/// destinations, and one `other` series for the rest.
struct MetricsPage {
    static let topN = 10

    /// The Prometheus text for `report` (from the watch tracker, so ages persist across scrapes).
    static func render(snapshot: Snapshot, report: WatchReport, scrapeSeconds: Double) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ unit: String = "", _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(namespace: "linger", metricName: name, unitName: unit, helpText: help), labels: labels)
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "linger", metricName: name, unitName: "total", helpText: help))
        }

        for state in TCPState.allCases where state != .newSynRecv {
            gauge("tcp_sockets", "", "TCP sockets per state in the namespace.", [("state", state.kernelName)])
                .record(Double(report.counts[state] ?? 0))
        }

        // Per process: CLOSE_WAIT (with the age of the oldest stuck socket) and ESTABLISHED.
        let closeWait = report.closeWaitByProcess
        for p in closeWait.prefix(topN) {
            let labels = [("pid", String(p.pid)), ("process", p.name)]
            gauge("tcp_close_wait_sockets", "", "CLOSE_WAIT sockets held by a process (top processes, then other).", labels).record(Double(p.count))
            gauge("tcp_close_wait_oldest", "seconds",
                  "How long the process's oldest CLOSE_WAIT socket has been stuck; age_source kernel-last-ack (tcp_info) or first-seen (since the exporter saw it).",
                  labels + [("age_source", p.oldestAgeSource.rawValue)])
                .record(p.oldestAgeSeconds)
            gauge("tcp_close_wait_leak", "", "1 when the process is reported as leaking CLOSE_WAIT sockets.", labels)
                .record(Double(p.leakReason == nil ? 0 : 1))
        }
        let otherCloseWait = closeWait.dropFirst(topN).reduce(0) { $0 + $1.count } + report.unownedCloseWait
        if otherCloseWait > 0 || closeWait.count > topN {
            gauge("tcp_close_wait_sockets", "", "CLOSE_WAIT sockets held by a process (top processes, then other).",
                  [("pid", ""), ("process", "other")]).record(Double(otherCloseWait))
        }
        var established: [Int32: (String, Int)] = [:]
        var establishedUnowned = 0
        for record in snapshot.records where record.state == .established {
            guard let owner = record.owners.first else { establishedUnowned += 1; continue }
            established[owner.pid, default: (owner.name, 0)].1 += 1
        }
        let rankedEstablished = established.sorted { $0.value.1 != $1.value.1 ? $0.value.1 > $1.value.1 : $0.key < $1.key }
        for (pid, entry) in rankedEstablished.prefix(topN) {
            gauge("tcp_established_sockets", "", "ESTABLISHED sockets held by a process (top processes, then other).",
                  [("pid", String(pid)), ("process", entry.0)]).record(Double(entry.1))
        }
        let otherEstablished = rankedEstablished.dropFirst(topN).reduce(0) { $0 + $1.value.1 } + establishedUnowned
        if otherEstablished > 0 {
            gauge("tcp_established_sockets", "", "ESTABLISHED sockets held by a process (top processes, then other).",
                  [("pid", ""), ("process", "other")]).record(Double(otherEstablished))
        }

        // Descriptors of TCP sockets a reset took out of the table, still held: per process, top processes.
        let orphaned = (snapshot.orphanedSocketDescriptors ?? []).sorted { $0.fds.count != $1.fds.count ? $0.fds.count > $1.fds.count : $0.pid < $1.pid }
        for held in orphaned.prefix(topN) {
            gauge("orphaned_socket_fds", "", "Descriptors of TCP sockets no longer in the TCP table (reset, never closed), per process (top processes).",
                  [("pid", String(held.pid)), ("process", held.name)]).record(Double(held.fds.count))
        }
        // Sockets retransmitting unacknowledged data, per remote address (top destinations, then other).
        let retransmitting = topCounts(
            snapshot.records.lazy.filter { UnreachablePeer.isRetransmitting($0, threshold: 1) }.map(\.remote.address.description))
        for (address, count) in retransmitting.prefix(topN) {
            gauge("tcp_retransmitting_sockets", "", "Sockets whose unacknowledged data is being retransmitted, per remote address.",
                  [("remote_address", address)]).record(Double(count))
        }
        let otherRetransmitting = retransmitting.dropFirst(topN).reduce(0) { $0 + $1.1 }
        if otherRetransmitting > 0 {
            gauge("tcp_retransmitting_sockets", "", "Sockets whose unacknowledged data is being retransmitted, per remote address.",
                  [("remote_address", "other")]).record(Double(otherRetransmitting))
        }

        // TIME_WAIT per destination with the share of the ephemeral port range it holds.
        for d in report.timeWaitByDestination.prefix(topN) {
            let labels = [("local_address", d.local.description), ("remote_address", d.remote.description), ("remote_port", String(d.remotePort))]
            gauge("tcp_time_wait_sockets", "", "TIME_WAIT sockets toward a destination (top destinations, then other).", labels).record(Double(d.count))
            if let share = d.portShare {
                gauge("tcp_ephemeral_port_share", "ratio", "Share of the usable ephemeral ports held toward a destination.", labels).record(share)
            }
        }
        let otherTimeWait = report.timeWaitByDestination.dropFirst(topN).reduce(0) { $0 + $1.count }
        if otherTimeWait > 0 {
            gauge("tcp_time_wait_sockets", "", "TIME_WAIT sockets toward a destination (top destinations, then other).",
                  [("local_address", "other"), ("remote_address", "other"), ("remote_port", "")]).record(Double(otherTimeWait))
        }

        // The doctor's findings, as a count per rule and severity (0 series for rules that found nothing).
        var findings: [String: [String: Int]] = [:]
        for rule in Doctor.builtInRules.map(\.id) + ["time-wait-ports", "time-wait-server", "time-wait-buckets", "time-wait-overflow"] {
            findings[rule] = [:]
        }
        for f in report.findings { findings[f.id, default: [:]][f.severity.name, default: 0] += 1 }
        for (rule, bySeverity) in findings {
            for severity in Severity.allCases {
                gauge("doctor_findings", "", "Findings of linger doctor, by rule and severity.", [("rule", rule), ("severity", severity.name)])
                    .record(Double(bySeverity[severity.name] ?? 0))
            }
        }
        let worst = report.findings.map(\.severity).max()
        gauge("doctor_status", "", "0 healthy, 1 warning, 2 critical, as linger doctor's exit status.").record(Double(worst.map { $0 == .info ? 0 : $0.rawValue } ?? 0))

        // Kernel counters that name problems (cumulative; use rate()).
        let kernel: [(String, String, String)] = [
            ("TcpExt:ListenOverflows", "tcp_listen_overflows", "Handshakes dropped because an accept queue was full."),
            ("TcpExt:ListenDrops", "tcp_listen_drops", "Every drop at a listener, overflows included."),
            ("TcpExt:TCPTimeWaitOverflow", "tcp_time_wait_overflow", "Connections closed without TIME_WAIT because tcp_max_tw_buckets was reached."),
            ("TcpExt:TCPAbortOnClose", "tcp_abort_on_close", "RSTs sent by close() with unread data."),
            ("TcpExt:TCPAbortOnData", "tcp_abort_on_data", "RSTs for data after close(), or close() with SO_LINGER 0."),
            ("TcpExt:TCPAbortOnTimeout", "tcp_abort_on_timeout", "Connections aborted after retransmission timeouts."),
            ("TcpExt:TWRecycled", "tcp_time_wait_recycled", "TIME_WAIT ports taken over by connect() (tcp_tw_reuse)."),
            ("Tcp:EstabResets", "tcp_established_resets", "ESTABLISHED or CLOSE_WAIT connections reset."),
            ("Tcp:ActiveOpens", "tcp_active_opens", "connect() calls that sent a SYN."),
            ("Tcp:PassiveOpens", "tcp_passive_opens", "Connections accepted from a listener's handshake."),
        ]
        for (key, name, help) in kernel {
            if let value = snapshot.counters[key] { counter(name, help).increment(by: value) }
        }
        if let tw = snapshot.counters["sockstat:tw"] {
            gauge("tcp_time_wait_kernel", "", "TIME_WAIT sockets as /proc/net/sockstat counts them (FIN_WAIT2 minisockets included).").record(Double(tw))
        }
        gauge("scrape_duration", "seconds", "How long reading the socket table and building this page took.").record(scrapeSeconds)
        return sortedFamilies(registry.emitToBuffer())
    }

    /// The registry emits families in hash order, different on every scrape; sorted by name (and the series of
    /// each family by their labels), two scrapes diff cleanly.
    static func sortedFamilies(_ page: [UInt8]) -> [UInt8] {
        var families: [(name: Substring, header: [Substring], series: [Substring])] = []
        let text = String(decoding: page, as: UTF8.self)
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if families.last?.name == name && families.last?.series.isEmpty == true {
                    families[families.count - 1].header.append(line)
                } else {
                    families.append((name, [line], []))
                }
            } else if !families.isEmpty {
                families[families.count - 1].series.append(line)
            } else {
                families.append(("", [], [line]))
            }
        }
        var out = ""
        out.reserveCapacity(page.count)
        for family in families.sorted(by: { $0.name < $1.name }) {
            for line in family.header + family.series.sorted() { out += line + "\n" }
        }
        return Array(out.utf8)
    }
}

/// Counts per key, most first (ties by key), for bounded per-destination series.
private func topCounts(_ keys: some Sequence<String>) -> [(String, Int)] {
    var counts: [String: Int] = [:]
    for key in keys { counts[key, default: 0] += 1 }
    return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
}
