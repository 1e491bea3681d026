/// Sockets that sent their FIN and wait for the peer's (FACTS §2.4). Held by a process after
/// `shutdown(SHUT_WR)` they wait forever; orphaned, `tcp_fin_timeout` reaps them.
public struct FinWait2Stall: DiagnosisRule {
    public let id = "fin-wait-2"
    public let needsOwners = true
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        let finWait2 = context.snapshot.records.filter { $0.state == .finWait2 }
        let finTimeout = context.snapshot.sysctls.finTimeout
        var findings: [Finding] = []

        let held = Dictionary(grouping: finWait2.filter { !$0.isOrphan }, by: OwnerKey.init)
        for (owner, sockets) in held.sorted(by: { $0.value.count > $1.value.count }) where sockets.count >= t.heldFinWait2Warning {
            let peers = topCounts(sockets.map(\.remote.address), limit: 5, describe: \.description)
            let examples = sockets.prefix(t.examplesPerFinding)
            findings.append(
                Finding(
                    id: id, severity: sockets.count >= t.heldFinWait2Critical ? .critical : .warning,
                    summary: "\(owner.label) holds \(sockets.count) half-closed sockets in FIN_WAIT2 that never time out",
                    evidence: .object(
                        owner.json + [
                            ("count", .number(sockets.count)), ("held", .bool(true)),
                            ("remotePeers", countsJSON(peers, keyName: "peer")),
                            ("examples", .array(examples.map(\.evidenceJSON))),
                        ]),
                    evidenceLines: [
                        "\(sockets.count) FIN_WAIT2 sockets still held by \(owner.label) (inode set, no timer)",
                        "remote peers: \(countsText(peers))",
                    ] + examples.map { "e.g. " + $0.evidenceLine },
                    cause: "The process shut down its sending side (shutdown(SHUT_WR)) and kept the fd while the peer never "
                        + "closed its side; tcp_fin_timeout applies only to orphaned sockets, so these wait forever.",
                    remedy: "After shutdown(), read until EOF with a deadline (a few seconds), then close() whatever happens; "
                        + "and find out why the peer does not close (a half-close it ignores, or a peer that hangs)."
                )
            )
        }

        let orphans = finWait2.filter(\.isOrphan)
        if orphans.count >= t.orphanFinWait2Warning {
            let peers = topCounts(orphans.map(\.remote.address), limit: 5, describe: \.description)
            let timeoutText = finTimeout.map { "\($0) s" } ?? "tcp_fin_timeout"
            findings.append(
                Finding(
                    id: id, severity: .warning,
                    summary: "\(orphans.count) orphaned FIN_WAIT2 sockets wait for peers that do not close",
                    evidence: .object([
                        ("count", .number(orphans.count)), ("held", .bool(false)),
                        ("finTimeoutSeconds", finTimeout.map { .number($0) } ?? .null),
                        ("remotePeers", countsJSON(peers, keyName: "peer")),
                    ]),
                    evidenceLines: [
                        "\(orphans.count) FIN_WAIT2 sockets with no owner (inode 0); the kernel drops each after \(timeoutText)",
                        "remote peers: \(countsText(peers))",
                    ],
                    cause: "This host closed these connections and the peers acknowledged the FIN but never sent their own; "
                        + "the application is gone from them, so the kernel keeps each for tcp_fin_timeout (\(timeoutText)).",
                    remedy: "Find why the peers keep their side open (a CLOSE_WAIT leak on their side is the usual cause: run "
                        + "linger doctor there). Lowering tcp_fin_timeout shortens the wait; it does not change TIME_WAIT."
                )
            )
        }
        return findings
    }
}
