/// A process holds sockets whose peer has closed and it has not (FACTS §2.5: CLOSE_WAIT has no timer).
public struct CloseWaitLeak: DiagnosisRule {
    public let id = "close-wait"
    public let needsOwners = true
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        let closeWait = context.snapshot.records.filter { $0.state == .closeWait }
        let groups = Dictionary(grouping: closeWait, by: OwnerKey.init)
        // Inodes that were already in CLOSE_WAIT in the earlier snapshot: proof the socket is stuck.
        let earlierInodes: Set<UInt64>? = context.earlier.map { earlier in
            Set(earlier.records.lazy.filter { $0.state == .closeWait && $0.inode != 0 }.map(\.inode))
        }
        return groups.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }
            .compactMap { owner, sockets -> Finding? in
                guard sockets.count >= t.closeWaitWarning else { return nil }
                let severity: Severity = sockets.count >= t.closeWaitCritical ? .critical : .warning
                let localPorts = Set(sockets.map(\.local.port)).sorted()
                let peers = topCounts(sockets.map(\.remote.address), limit: 5, describe: \.description)
                let remotePorts = Set(sockets.map(\.remote.port)).sorted()
                // In CLOSE_WAIT the peer's FIN occupies one sequence number, so recv-Q is 1 until the
                // application reads the EOF, 0 once it has (and then forgot to close), 1 + n with n data bytes unread.
                let readEOF = sockets.filter { $0.recvQ == 0 }.count
                let unreadData = sockets.filter { $0.recvQ > 1 }.count
                let examples = sockets.prefix(t.examplesPerFinding)
                let fds = sockets.compactMap { $0.owners.first?.fd }.sorted()

                var evidence: [(String, JSONValue)] = owner.json + [
                    ("count", .number(sockets.count)),
                    ("localPorts", .array(localPorts.map { .number($0) })),
                    ("remotePeers", countsJSON(peers, keyName: "peer")),
                    ("remotePorts", .array(remotePorts.prefix(10).map { .number($0) })),
                    ("distinctRemotePorts", .number(remotePorts.count)),
                    ("readEOF", .number(readEOF)),
                    ("notReadToEOF", .number(sockets.count - readEOF)),
                    ("withUnreadData", .number(unreadData)),
                    ("fds", .array(fds.prefix(20).map { .number($0) })),
                ]
                let portText = localPorts.count == 1 ? "local port \(localPorts[0])" : "local ports \(portsText(localPorts))"
                var lines = [
                    "\(sockets.count) sockets in CLOSE_WAIT held by \(owner.label) on \(portText)",
                    "remote peers: \(countsText(peers)); remote ports: \(portsText(remotePorts))",
                ]
                if readEOF > 0 {
                    lines.append(
                        // recv-Q 0 says the reads reached the FIN, not how: a read that returns the last bytes
                        // consumes a FIN queued behind them in the same call, so the application may never
                        // have seen a read return 0 (an error path that drops the socket after reading a
                        // request looks the same).
                        "\(readEOF) have recv-Q 0: the application read everything the peer sent, up to its FIN, and still did not close (its last read may have returned data, not 0)")
                }
                if sockets.count - readEOF > 0 {
                    lines.append(
                        "\(sockets.count - readEOF) were never read up to the EOF (recv-Q ≥ 1, the FIN counts as one)"
                            + (unreadData > 0 ? ", \(unreadData) with unread data: the application stopped reading them" : ": the application no longer reads them"))
                }
                if !fds.isEmpty { lines.append("file descriptors: \(fds.prefix(20).map(String.init).joined(separator: ", "))\(fds.count > 20 ? ", …" : "")") }
                if let earlierInodes, let interval = context.confirmInterval {
                    let stuck = sockets.filter { $0.inode != 0 && earlierInodes.contains($0.inode) }.count
                    evidence.append(("stillThereAfterSeconds", .double(interval)))
                    evidence.append(("stuck", .number(stuck)))
                    lines.append(
                        "confirmed: \(stuck) of \(sockets.count) were already in CLOSE_WAIT \(Int(interval.rounded())) s earlier (same inode) — stuck, not passing through"
                    )
                }
                evidence.append(("examples", .array(examples.map(\.evidenceJSON))))
                lines += examples.map { "e.g. " + $0.evidenceLine }

                let who = owner.name ?? "the owning process"
                return Finding(
                    id: id, severity: severity,
                    summary: "\(owner.label) holds \(sockets.count) sockets in CLOSE_WAIT on \(portText)",
                    evidence: .object(evidence), evidenceLines: lines,
                    cause: "The peers closed these connections (their FIN arrived) but \(who) never called close(); "
                        + "CLOSE_WAIT has no kernel timer, so each socket and its fd stay until the process closes them or exits.",
                    remedy: "Close the socket when a read returns 0 (EOF) and on every error and timeout path (a finally/defer "
                        + "next to the open); for HTTP clients, always read and close response bodies. SO_REUSEADDR and "
                        + "SO_LINGER do not fix this: they act at bind() and close(), and the process never calls close(). "
                        + "Restarting the process frees the sockets only until the leak refills them."
                )
            }
    }
}

func portsText(_ ports: [UInt16]) -> String {
    ports.count <= 6 ? ports.map(String.init).joined(separator: ", ")
        : ports.prefix(6).map(String.init).joined(separator: ", ") + " and \(ports.count - 6) more"
}
