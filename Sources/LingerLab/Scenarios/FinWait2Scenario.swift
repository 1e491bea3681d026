import LingerCore

/// An active closer whose peer never closes: FIN_WAIT2 ends at tcp_fin_timeout for an orphaned socket and
/// never for one still held after shutdown().
public struct FinWait2Scenario: LabScenario {
    public let name = "fin-wait-2"
    public let summary = "FIN_WAIT2 times out for orphans (tcp_fin_timeout), never for sockets held after shutdown()"
    public let claim = "tcp_fin_timeout applies only to orphaned FIN_WAIT2 sockets: after close() they disappear once "
        + "the timeout passes; a socket the process still holds after shutdown(SHUT_WR) stays in FIN_WAIT2 with no timer."
    public let source = "Linux net/ipv4/tcp.c: an orphaned FIN_WAIT2 socket is timed by tcp_fin_timeout (ip-sysctl.rst); one still held by its process after shutdown() has no timer (tcp(7))."
    public init() {}

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let timeout = quick ? 3 : 10
        let count = 10
        try lab.sysctl("net.ipv4.tcp_fin_timeout", "\(timeout)")
        lab.progress("fin-wait-2: tcp_fin_timeout=\(timeout) s in the lab's namespace; the peer never closes")
        _ = try lab.peer(["server", "--port", "7301", "--behavior", "hold"])
        let start = lab.elapsed
        _ = try lab.peer(["clients", "--port", "7301", "--count", "\(count)", "--then", "close"])
        _ = try lab.peer(["clients", "--port", "7301", "--count", "\(count)", "--then", "half-close"])
        var series: [String: LabSeries] = [:]
        var orphansGoneAt: Double?
        try lab.sample(every: 0.2, for: Double(timeout) + 4, into: &series) { snapshot in
            let orphans = snapshot.count(.finWait2) { $0.remote.port == 7301 && $0.isOrphan }
            if orphans == 0 && orphansGoneAt == nil { orphansGoneAt = lab.elapsed - start }
            return [
                "orphaned FIN_WAIT2 (closed)": Double(orphans),
                "held FIN_WAIT2 (shutdown, fd kept)": Double(snapshot.count(.finWait2) { $0.remote.port == 7301 && !$0.isOrphan }),
            ]
        }
        let last = try lab.snapshot()
        let held = last.count(.finWait2) { $0.remote.port == 7301 && !$0.isOrphan }
        let heldTimers = last.records.filter { $0.state == .finWait2 && !$0.isOrphan && $0.remote.port == 7301 }.filter { $0.timer != nil }.count
        let orphansAtStart = series["orphaned FIN_WAIT2 (closed)"]?.points.first?.1 ?? 0
        let gone = orphansGoneAt ?? -1
        let passed = Int(orphansAtStart) == count && gone >= Double(timeout) - 1 && gone <= Double(timeout) + 3 && held == count && heldTimers == 0
        return LabResult(
            variants: [
                LabVariant("orphaned", [("sockets", number(Int(orphansAtStart))), ("goneAfterSeconds", number(gone)),
                                        ("tcpFinTimeout", number(timeout))]),
                LabVariant("held-after-shutdown", [("sockets", number(count)), ("stillInFinWait2", number(held)),
                                                   ("withATimer", number(heldTimers)), ("observedSeconds", number(Double(timeout) + 4))]),
            ],
            passed: passed,
            findings: [
                "\(Int(orphansAtStart)) orphaned FIN_WAIT2 sockets were gone \((gone * 10).rounded() / 10) s after close(), with tcp_fin_timeout = \(timeout) s.",
                "\(held) of \(count) sockets held after shutdown(SHUT_WR) were still in FIN_WAIT2 after \(timeout + 4) s, \(heldTimers) with a timer.",
            ],
            series: Array(series.values))
    }
}
