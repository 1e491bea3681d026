/// Connections idle for long with keepalive off: if their peer vanished, nothing on this side can tell.
/// A note, not a warning: idle pooled connections are normal, and most of them are fine.
public struct IdleWithoutKeepalive: DiagnosisRule {
    public let id = "idle-without-keepalive"
    public let needsOwners = false
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        let limit = UInt32(clamping: Int(t.idleWithoutKeepaliveSeconds * 1000))
        // No timer at all: nothing unacknowledged (no retransmit timer) and no SO_KEEPALIVE (no keepalive timer).
        let idle = context.snapshot.records.filter { record in
            guard record.state == .established, record.timer == nil, let info = record.info else { return false }
            return info.lastReceiveMilliseconds >= limit && info.lastSendMilliseconds >= limit
        }
        guard !idle.isEmpty else { return [] }
        let peers = topCounts(idle.map(\.remote.description), limit: 5, describe: { $0 })
        let longest = idle.compactMap { $0.info.map { min($0.lastReceiveMilliseconds, $0.lastSendMilliseconds) } }.max() ?? 0
        let keepalive = context.snapshot.sysctls.keepaliveTime
        return [Finding(
            id: id, severity: .info,
            summary: "\(idle.count) ESTABLISHED connection\(idle.count == 1 ? " has" : "s have") been idle for over \(Int(t.idleWithoutKeepaliveSeconds)) s with keepalive off",
            evidence: .object([
                ("count", .number(idle.count)), ("remotePeers", countsJSON(peers, keyName: "peer")),
                ("longestIdleSeconds", .number(Int(longest / 1000))),
                ("examples", .array(idle.prefix(t.examplesPerFinding).map(\.evidenceJSON))),
            ]),
            evidenceLines: [
                "\(idle.count) connections with no timer armed (no keepalive, nothing unacknowledged), idle up to \(longest / 1000) s",
                "peers: \(countsText(peers))",
            ] + idle.prefix(t.examplesPerFinding).map { "e.g. " + $0.evidenceLine },
            cause: "A peer that vanished without a FIN or RST (its host died, a NAT or firewall dropped the state) leaves an idle "
                + "connection half-open, and an idle half-open connection is indistinguishable from a healthy one on this side: "
                + "no data is unacknowledged, so no retransmission reveals it.",
            remedy: "Turn on SO_KEEPALIVE with TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT suited to the path (the machine's default "
                + "waits \(keepalive.map { "\($0)" } ?? "7200") s, tcp_keepalive_time, before the first probe), or send "
                + "application heartbeats with a deadline; pools should validate idle connections before use."
        )]
    }
}
