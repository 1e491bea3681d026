/// Many connects toward one destination that never complete.
public struct SynSentPileUp: DiagnosisRule {
    public let id = "syn-sent"
    public let needsOwners = true
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        let pending = context.snapshot.records.filter { $0.state == .synSent }
        let byDestination = Dictionary(grouping: pending, by: \.remote)
        return byDestination.sorted { $0.value.count > $1.value.count }.compactMap { destination, sockets in
            guard sockets.count >= t.synSentWarning else { return nil }
            let owners = topCounts(sockets.map(OwnerKey.init), limit: 3, describe: \.label)
            let retransmits = sockets.compactMap(\.timer?.retransmits).max() ?? 0
            return Finding(
                id: id, severity: sockets.count >= t.synSentCritical ? .critical : .warning,
                summary: "\(sockets.count) connections to \(destination) are stuck in SYN_SENT",
                evidence: .object([
                    ("remote", .string(destination.description)), ("count", .number(sockets.count)),
                    ("processes", countsJSON(owners, keyName: "process")),
                    ("maxRetransmits", .number(retransmits)),
                    ("examples", .array(sockets.prefix(t.examplesPerFinding).map(\.evidenceJSON))),
                ]),
                evidenceLines: [
                    "\(sockets.count) SYN_SENT to \(destination), from \(countsText(owners))",
                    "up to \(retransmits) SYN retransmissions so far",
                ],
                cause: "connect() sent SYNs that get no answer: the destination is down or unreachable, a firewall drops "
                    + "them, or its listener's queues are full; each attempt retries for about two minutes "
                    + "(tcp_syn_retries) unless the application gives up sooner.",
                remedy: "Check that \(destination) is reachable and listening (its own linger doctor shows a full accept "
                    + "queue); give connects a timeout and retry with capped, jittered backoff so callers do not pile up."
            )
        }
    }
}
