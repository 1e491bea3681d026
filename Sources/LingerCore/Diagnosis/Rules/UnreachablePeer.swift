/// Connections retransmitting into silence: data sent and never acknowledged, with the retransmission
/// timer backing off. The peer's host is gone or cut off; the connection still says ESTABLISHED.
public struct UnreachablePeer: DiagnosisRule {
    public let id = "unreachable-peer"
    /// Names the processes (the owner walk includes retransmitting sockets).
    public let needsOwners = true
    public init() {}

    /// States in which a socket has data or a FIN waiting for the peer's acknowledgement.
    static let states: Set<TCPState> = [.established, .closeWait, .finWait1, .lastAck, .closing]

    /// Whether a socket counts as retransmitting into silence at `threshold` retransmissions (the exporter
    /// counts them per destination from 1).
    public static func isRetransmitting(_ record: SocketRecord, threshold: Int) -> Bool {
        guard states.contains(record.state), let timer = record.timer, timer.kind == .retransmit else { return false }
        return Int(timer.retransmits) >= threshold
    }

    /// Whether sent data has waited for an acknowledgement longer than `seconds` (tcp_info: segments unacked,
    /// and the last ACK that long ago), which on a long path comes before many retransmissions do.
    static func isWaitingForAcknowledgement(_ record: SocketRecord, seconds: Double) -> Bool {
        guard states.contains(record.state), let info = record.info, info.unacked > 0 else { return false }
        return Double(info.lastAckMilliseconds) / 1000 >= seconds
    }

    private struct Key: Hashable, Comparable {
        var owner: OwnerKey
        var peer: IPAddress
        static func < (a: Key, b: Key) -> Bool { a.owner != b.owner ? a.owner < b.owner : a.peer.description < b.peer.description }
    }

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        let stalled = context.snapshot.records.filter {
            Self.isRetransmitting($0, threshold: t.unreachableRetransmitsWarning)
                || Self.isWaitingForAcknowledgement($0, seconds: t.unreachableUnackedSeconds)
        }
        let groups = Dictionary(grouping: stalled) { Key(owner: OwnerKey($0), peer: $0.remote.address) }
        let retries2 = context.snapshot.sysctls.retries2
        return groups.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }
            .map { key, sockets in
                let most = sockets.map { Int($0.timer?.retransmits ?? 0) }.max() ?? 0
                let waited = sockets.compactMap { $0.info.map { Double($0.lastAckMilliseconds) / 1000 } }.max()
                let unacked = sockets.reduce(0) { $0 + Int($1.sendQ) }
                let severity: Severity = most >= t.unreachableRetransmitsCritical ? .critical : .warning
                let ports = Set(sockets.map(\.remote.port)).sorted()
                let examples = sockets.prefix(t.examplesPerFinding)
                var evidence: [(String, JSONValue)] = key.owner.json + [
                    ("peer", .string(key.peer.description)),
                    ("remotePorts", .array(ports.prefix(10).map { .number($0) })),
                    ("count", .number(sockets.count)),
                    ("retransmits", .number(most)),
                    ("unackedBytes", .number(unacked)),
                    ("tcpRetries2", retries2.map { .number($0) } ?? .null),
                    ("lastAckSecondsAgo", waited.map { .double(($0 * 10).rounded() / 10) } ?? .null),
                ]
                evidence.append(("examples", .array(examples.map(\.evidenceJSON))))
                var lines = [
                    "\(sockets.count) connection\(sockets.count == 1 ? "" : "s") of \(key.owner.label) to \(key.peer) (port \(portsText(ports))) "
                        + "retransmitting: up to \(most) retransmissions, \(unacked) bytes unacknowledged",
                    waited.map { "the last acknowledgement arrived \(Int($0)) s ago (tcp_info)" } ?? "no tcp_info: the retransmit timer alone tells",
                    "the state still says \(Set(sockets.map(\.state.kernelName)).sorted().joined(separator: ", ")): nothing came back, not even a reset",
                ]
                if let retries2 {
                    lines.append("the kernel gives up after \(retries2) retransmissions (net.ipv4.tcp_retries2; 15 is about 15 minutes), then the application gets ETIMEDOUT")
                }
                lines += examples.map { "e.g. " + $0.evidenceLine }
                return Finding(
                    id: id, severity: severity,
                    summary: "\(key.owner.label) is sending to \(key.peer), which acknowledges nothing (\(most) retransmissions)",
                    evidence: .object(evidence), evidenceLines: lines,
                    cause: "The peer's host went away or the path to it broke (a link down, a firewall dropping, a crashed machine): "
                        + "unacknowledged data is retransmitted with exponential backoff, and the connection stays ESTABLISHED "
                        + "until tcp_retries2 runs out\(retries2.map { " (\($0) retransmissions here)" } ?? ""), about 15 minutes by default. "
                        + "An idle connection to such a peer shows nothing at all: only keepalive or the application can find it.",
                    remedy: "Bound the wait: TCP_USER_TIMEOUT (setsockopt, milliseconds) ends a connection whose data stays unacknowledged "
                        + "that long; keepalive (SO_KEEPALIVE with TCP_KEEPIDLE/KEEPINTVL/KEEPCNT) finds idle dead peers; application "
                        + "pings with a deadline (as linger's link does) catch both. Lowering tcp_retries2 shortens it for the whole machine."
                )
            }
    }
}
