/// Every number the doctor's rules compare against, in one place; `docs/DOCTOR.md` explains each.
///
/// They are values, not constants buried in rules, so tests and future flags can change them.
public struct DoctorThresholds: Sendable, Hashable {
    /// CLOSE_WAIT sockets in one process that make a warning. A handful pass through briefly on busy
    /// servers (between the peer's FIN and the application's next read); five held at once rarely do.
    public var closeWaitWarning = 5
    /// CLOSE_WAIT sockets in one process that make it critical: "a few dozen" is a leak, not a race.
    public var closeWaitCritical = 32
    /// Share of the usable ephemeral ports used toward one destination that makes a warning. Past half,
    /// connect() scans the whole first parity pass for every new connection (FACTS §2.8), so CPU and
    /// latency rise before failures begin.
    public var portShareWarning = 0.5
    /// Share of the usable ephemeral ports that makes it critical: connect() is about to fail with
    /// EADDRNOTAVAIL.
    public var portShareCritical = 0.9
    /// TIME_WAIT sockets on one server port that earn an informational note (they cost no ports).
    public var serverTimeWaitInfo = 1000
    /// Share of `tcp_max_tw_buckets` in use that makes a warning: past the limit TIME_WAIT is skipped
    /// silently, and late segments of old connections can reach new ones.
    public var timeWaitBucketShareWarning = 0.8
    /// FIN_WAIT2 sockets still held by one process (no timer at all) that make a warning.
    public var heldFinWait2Warning = 5
    /// Held FIN_WAIT2 sockets in one process that make it critical.
    public var heldFinWait2Critical = 100
    /// Orphaned FIN_WAIT2 sockets (reaped by `tcp_fin_timeout`) that make a warning.
    public var orphanFinWait2Warning = 500
    /// Accept-queue fill (queued ÷ backlog) that makes a warning; a queue past its backlog is critical.
    public var acceptQueueFillWarning = 0.8
    /// SYN_SENT sockets toward one destination that make a warning.
    public var synSentWarning = 10
    /// SYN_SENT sockets toward one destination that make it critical.
    public var synSentCritical = 100
    /// TCP descriptors of one process that point at no socket of the table (reset, never closed) that make a
    /// warning. One or two pass through between an RST and the application's next read; ten do not.
    public var orphanedSocketFDsWarning = 10
    /// Such descriptors that make it critical, or ...
    public var orphanedSocketFDsCritical = 1000
    /// ... their share of the process's RLIMIT_NOFILE that makes it critical: accept() and socket() are
    /// about to fail with EMFILE.
    public var orphanedSocketFDShareCritical = 0.5
    /// Retransmissions of unacknowledged data on one socket that make a peer look unreachable (with a 200 ms
    /// minimum RTO the third comes about 1.4 s after the first send went unanswered).
    public var unreachableRetransmitsWarning = 3
    /// Seconds sent data may wait for an acknowledgement (tcp_info: unacked segments, time since the last ACK)
    /// before the peer looks unreachable, whatever the retransmission count (on long paths backoff is slow).
    public var unreachableUnackedSeconds = 5.0
    /// Retransmissions that make it critical (the eighth comes after about 50 s of silence).
    public var unreachableRetransmitsCritical = 8
    /// Seconds an ESTABLISHED connection with no timer (keepalive off, nothing unacknowledged) may sit idle in
    /// both directions before the doctor notes that a vanished peer would go unnoticed.
    public var idleWithoutKeepaliveSeconds = 600.0
    /// Example sockets attached to each finding.
    public var examplesPerFinding = 3

    public init() {}
}
