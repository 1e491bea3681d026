/// Runs the diagnosis rules over a snapshot and orders what they find.
public struct Doctor: Sendable {
    /// The rules, in the order their findings are listed when severities tie.
    public var rules: [any DiagnosisRule]
    public var thresholds: DoctorThresholds

    /// The built-in rules with default thresholds.
    public init(rules: [any DiagnosisRule] = Doctor.builtInRules, thresholds: DoctorThresholds = DoctorThresholds()) {
        self.rules = rules
        self.thresholds = thresholds
    }

    /// Every rule Linger ships.
    public static let builtInRules: [any DiagnosisRule] = [
        CloseWaitLeak(), TimeWaitPressure(), FinWait2Stall(), ListenOverflow(), SynSentPileUp(), OrphanedSocketFDs(), UnreachablePeer(),
        IdleWithoutKeepalive(),
    ]

    /// Whether any rule needs process owners, so the probe knows to scan `/proc/PID/fd`.
    public var needsOwners: Bool { rules.contains(where: \.needsOwners) }

    /// Diagnoses `snapshot`; `earlier` (from `--confirm`) lets rules prove sockets are stuck.
    public func diagnose(_ snapshot: Snapshot, earlier: Snapshot? = nil) -> Diagnosis {
        let context = DiagnosisContext(snapshot: snapshot, earlier: earlier, thresholds: thresholds)
        var findings: [Finding] = []
        for rule in rules { findings += rule.evaluate(context) }
        // Stable sort: most severe first, rule order within a severity.
        let ordered = findings.enumerated().sorted {
            $0.element.severity != $1.element.severity ? $0.element.severity > $1.element.severity : $0.offset < $1.offset
        }.map(\.element)
        return Diagnosis(findings: ordered, counts: snapshot.countsByState, total: snapshot.records.count)
    }
}

/// The doctor's verdict: findings, most severe first, and the counts per state they were drawn from.
public struct Diagnosis: Sendable {
    public var findings: [Finding]
    public var counts: [TCPState: Int]
    public var total: Int

    /// `critical` if any finding is, else `warning` if any is, else `healthy` (info findings stay healthy).
    public var status: HealthStatus {
        switch findings.map(\.severity).max() {
        case .critical: .critical
        case .warning: .warning
        default: .healthy
        }
    }
}
