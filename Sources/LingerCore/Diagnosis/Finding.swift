/// One problem the doctor found: what, how bad, the evidence, the cause in one sentence, and the remedy.
public struct Finding: Sendable, Hashable {
    /// The rule's stable id (`close-wait`, `time-wait-ports`, ...), for scripts and `docs/DOCTOR.md`.
    public var id: String
    public var severity: Severity
    /// One line a human reads first: who, how many, where.
    public var summary: String
    /// The facts behind the finding, as data (counts, process, pid, endpoints, example sockets).
    public var evidence: JSONValue
    /// Lines that present the evidence to a human, in the order they matter.
    public var evidenceLines: [String]
    /// Why this happens, in one or two sentences.
    public var cause: String
    /// What to change.
    public var remedy: String

    public init(
        id: String, severity: Severity, summary: String, evidence: JSONValue, evidenceLines: [String],
        cause: String, remedy: String
    ) {
        self.id = id
        self.severity = severity
        self.summary = summary
        self.evidence = evidence
        self.evidenceLines = evidenceLines
        self.cause = cause
        self.remedy = remedy
    }
}
