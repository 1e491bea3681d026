/// A process holds TCP socket descriptors whose sockets left the kernel's table: reset or failed
/// connections it never closed. `ss` cannot show them; only the fd walk can.
public struct OrphanedSocketFDs: DiagnosisRule {
    public let id = "orphaned-socket-fds"
    /// It reads what the owner walk found; it runs only when that walk runs (there are CLOSE_WAIT, FIN_WAIT2,
    /// LISTEN, SYN_SENT or retransmitting sockets to attribute), so a healthy idle table costs nothing.
    public let needsOwners = true
    public init() {}

    public func evaluate(_ context: DiagnosisContext) -> [Finding] {
        let t = context.thresholds
        guard let held = context.snapshot.orphanedSocketDescriptors else { return [] }
        return held.sorted { $0.fds.count != $1.fds.count ? $0.fds.count > $1.fds.count : $0.pid < $1.pid }
            .compactMap { process -> Finding? in
                let count = process.fds.count
                guard count >= t.orphanedSocketFDsWarning else { return nil }
                let share = process.shareOfLimit
                let critical = count >= t.orphanedSocketFDsCritical || (share ?? 0) >= t.orphanedSocketFDShareCritical
                let label = "\(process.name) (pid \(process.pid))"
                var evidence: [(String, JSONValue)] = [
                    ("process", .string(process.name)), ("pid", .number(process.pid)), ("count", .number(count)),
                    ("fds", .array(process.fds.prefix(50).map { .number($0) })),
                    ("openFileLimit", process.openFileLimit.map { .number($0) } ?? .null),
                    ("shareOfLimit", share.map(JSONValue.double) ?? .null),
                ]
                var lines = [
                    "\(count) TCP socket descriptors held by \(label) point at no socket in the TCP table",
                    "file descriptors: \(process.fds.prefix(20).map(String.init).joined(separator: ", "))\(count > 20 ? ", …" : "")",
                ]
                if let limit = process.openFileLimit, let share {
                    lines.append("that is \(percent(share)) of its open-file limit (\(limit), RLIMIT_NOFILE in /proc/\(process.pid)/limits)")
                }
                lines.append("ss and netstat do not list these; lsof shows them as \"can't identify protocol\"")
                evidence.append(("source", .string("/proc/PID/fd walk; system.sockprotoname TCP or TCPv6; inode absent from the TCP table")))
                return Finding(
                    id: id, severity: critical ? .critical : .warning,
                    summary: "\(label) holds \(count) descriptors of TCP sockets that are no longer in the TCP table",
                    evidence: .object(evidence), evidenceLines: lines,
                    cause: "These connections ended by a reset (the peer's RST, a failed keepalive, `ss -K`) or a failed connect: "
                        + "the kernel moved each socket to CLOSE and out of its table, but \(process.name) never called close(), "
                        + "so the socket and its descriptor stay until the process closes them or exits. Often these were CLOSE_WAIT "
                        + "leaks that a reset made invisible.",
                    remedy: "Close the socket on every error path: a read or write that fails with ECONNRESET, EPIPE or ETIMEDOUT "
                        + "ends the connection, and the descriptor must be closed there (a finally/defer next to the open). "
                        + "Killing the connections (ss -K) does not free descriptors; restarting the process does, until the leak refills them."
                )
            }
    }
}
