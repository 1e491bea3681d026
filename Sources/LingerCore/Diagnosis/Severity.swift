/// How urgent a finding is. The doctor's exit status is the worst severity found: 0 healthy (info or
/// nothing), 1 warning, 2 critical — so it drops into shell scripts and health checks.
public enum Severity: Int, Sendable, Hashable, Comparable, CaseIterable {
    /// Worth knowing; nothing is failing because of it.
    case info = 0
    /// Heading toward failure, or failing for some connections.
    case warning = 1
    /// Failing now, or about to: ports nearly gone, a process leaking sockets by the dozen, a full queue.
    case critical = 2

    public var name: String {
        switch self {
        case .info: "info"
        case .warning: "warning"
        case .critical: "critical"
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The overall verdict of a diagnosis.
public enum HealthStatus: String, Sendable, Hashable {
    case healthy, warning, critical

    /// The doctor's exit status for this verdict.
    public var exitCode: Int32 {
        switch self {
        case .healthy: 0
        case .warning: 1
        case .critical: 2
        }
    }
}
