/// A listener whose accept queue is full or nearly so, or accept-queue drops in the counters (FACTS §2.10).
public struct ListenOverflow: DiagnosisRule {
    public let id = "listen-overflow"
    public let needsOwners = true
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let snapshot = context.snapshot
        let overflows = snapshot.counters["TcpExt:ListenOverflows"] ?? 0
        let drops = snapshot.counters["TcpExt:ListenDrops"] ?? 0
        let earlierOverflows = context.earlier?.counters["TcpExt:ListenOverflows"]
        var findings: [Finding] = []

        // Netlink reports the backlog limit in sendQ; /proc/net/tcp does not, so there only the fill is known.
        for listener in snapshot.records where listener.state == .listen && listener.recvQ > 0 {
            let backlog = snapshot.source == .netlink ? Int(listener.sendQ) : nil
            let queued = Int(listener.recvQ)
            let full = backlog.map { queued > $0 } ?? false
            let fill = backlog.map { $0 > 0 ? Double(queued) / Double($0) : 1 }
            let nearlyFull = fill.map { $0 >= context.thresholds.acceptQueueFillWarning } ?? (overflows > 0)
            guard full || nearlyFull else { continue }
            let owner = OwnerKey(listener)
            var lines = [
                "listener \(listener.local) held by \(owner.label): \(queued) connections waiting"
                    + (backlog.map { " for a backlog of \($0)" } ?? "")
            ]
            if overflows > 0 || drops > 0 {
                lines.append("TcpExt ListenOverflows \(overflows), ListenDrops \(drops) since the namespace started")
            }
            if let somaxconn = snapshot.sysctls.somaxconn { lines.append("net.core.somaxconn = \(somaxconn)") }
            findings.append(
                Finding(
                    id: id, severity: full ? .critical : .warning,
                    summary: full
                        ? "accept queue of \(listener.local) is full (\(queued) waiting, backlog \(backlog ?? 0)): new connections are dropped"
                        : "accept queue of \(listener.local) is \(fill.map(percent) ?? "filling") full (\(queued) waiting)",
                    evidence: .object(
                        owner.json + [
                            ("local", .string(listener.local.description)),
                            ("queued", .number(queued)),
                            ("backlog", backlog.map { .number($0) } ?? .null),
                            ("listenOverflows", .int(overflows)),
                            ("listenDrops", .int(drops)),
                            ("somaxconn", snapshot.sysctls.somaxconn.map { .number($0) } ?? .null),
                        ]),
                    evidenceLines: lines,
                    cause: "Completed handshakes wait in the accept queue until the application calls accept(); "
                        + "\(owner.name ?? "the application") is not accepting as fast as clients connect, and once the queue "
                        + "passes its backlog the kernel drops new handshakes (ListenOverflows).",
                    remedy: "Accept faster (a dedicated accept loop, more workers, no blocking work before accept()); raise the "
                        + "listen() backlog and net.core.somaxconn, which caps it; look for a process that stopped accepting."
                )
            )
        }

        if findings.isEmpty && (overflows > 0 || drops > 0) {
            let recent = earlierOverflows.map { overflows - $0 }
            let severity: Severity = (recent ?? 0) > 0 ? .warning : .info
            var lines = ["TcpExt ListenOverflows \(overflows), ListenDrops \(drops) since the namespace started"]
            if let recent, let interval = context.confirmInterval {
                lines.append("\(recent) new overflows in the last \(Int(interval.rounded())) s")
            }
            findings.append(
                Finding(
                    id: id, severity: severity,
                    summary: "listen queues have overflowed \(overflows) times since the namespace started (no listener is full now)",
                    evidence: .object([
                        ("listenOverflows", .int(overflows)), ("listenDrops", .int(drops)),
                        ("recentOverflows", recent.map { .int($0) } ?? .null),
                    ]),
                    evidenceLines: lines,
                    cause: "At some point an accept queue was full when a handshake completed, so the kernel dropped it; the "
                        + "counters are cumulative and do not say which listener.",
                    remedy: "Run `linger doctor --confirm 10` during peak load to see whether it still happens and which "
                        + "listener fills; then accept faster or raise the backlog and net.core.somaxconn."
                )
            )
        }
        return findings
    }
}
