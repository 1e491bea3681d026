public import LingerCore

/// One pathology, reproduced with real sockets: the naive program beside the correct one.
public protocol LabScenario: Sendable {
    /// The name used on the command line (`close-wait-leak`).
    var name: String { get }
    /// One line for `linger lab list`.
    var summary: String { get }
    /// The claim the run checks, in one or two sentences (and in `docs/LAB.md` with its source).
    var claim: String { get }
    /// Where the claim comes from: kernel functions, RFCs, man pages. Printed in reports, which must make
    /// sense outside the repository, so it names public sources rather than linking to our docs.
    var source: String { get }
    /// Runs the scenario; `quick` shortens it to seconds (the tests use it).
    func run(in lab: LabContext, quick: Bool) throws -> LabResult
}

/// What a run measured.
public struct LabResult: Sendable {
    public var variants: [LabVariant]
    /// Whether the claim held.
    public var passed: Bool
    /// Sentences for the report: what was seen, what the model predicted.
    public var findings: [String]
    /// Socket counts over time, per series name (for the chart).
    public var series: [LabSeries]
    /// Trial tables as bar charts (scenarios whose result is a count per case rather than a curve).
    public var bars: LabBarChart?

    public init(variants: [LabVariant], passed: Bool, findings: [String], series: [LabSeries] = [], bars: LabBarChart? = nil) {
        self.variants = variants
        self.passed = passed
        self.findings = findings
        self.series = series
        self.bars = bars
    }
}

/// A grouped bar chart: one group per case (a close style under a condition, a kind of SYN), one bar per
/// outcome (delivered, lost; SYN+ACK, ACK).
public struct LabBarChart: Sendable {
    public var title: String
    /// What the bars count ("trials", "answers").
    public var unit: String
    /// The outcomes, in legend order; every group has a value for each (0 when absent).
    public var outcomes: [String]
    public var groups: [(name: String, values: [Double])]

    public init(title: String, unit: String, outcomes: [String], groups: [(name: String, values: [Double])]) {
        self.title = title
        self.unit = unit
        self.outcomes = outcomes
        self.groups = groups
    }
}

/// One variant of a scenario (`naive`, `correct`, ...) and its measurements.
public struct LabVariant: Sendable {
    public var name: String
    public var measurements: [(String, JSONValue)]

    public init(_ name: String, _ measurements: [(String, JSONValue)]) {
        self.name = name
        self.measurements = measurements
    }
}

/// A line on the chart: a count sampled over time.
public struct LabSeries: Sendable {
    public var name: String
    /// (seconds since the start of the run, value)
    public var points: [(Double, Double)]

    public init(name: String, points: [(Double, Double)] = []) {
        self.name = name
        self.points = points
    }
}

/// A finished run, as the CLI prints it.
public struct LabRun: Sendable {
    public var scenario: any LabScenario
    public var result: LabResult
    public var durationSeconds: Double

    public init(scenario: any LabScenario, result: LabResult, durationSeconds: Double) {
        self.scenario = scenario
        self.result = result
        self.durationSeconds = durationSeconds
    }

    /// `{"scenario", "verdict", "claim", "variants": [{"name", "measurements"}], "durationSeconds", "findings"}`.
    public var json: JSONValue {
        .object([
            ("scenario", .string(scenario.name)),
            ("verdict", .string(result.passed ? "pass" : "fail")),
            ("claim", .string(scenario.claim)),
            ("variants", .array(result.variants.map { .object([("name", .string($0.name)), ("measurements", .object($0.measurements))]) })),
            ("durationSeconds", .double((durationSeconds * 10).rounded() / 10)),
            ("findings", .array(result.findings.map(JSONValue.string))),
        ])
    }
}

/// Every scenario, in the order `linger lab list` shows them.
public enum LabCatalog {
    public static let scenarios: [any LabScenario] = [
        CloseWaitLeakScenario(), LostGoodbyeScenario(), TimeWaitChurnScenario(), ReuseAddrRestartScenario(),
        PortExhaustionScenario(), FinWait2Scenario(), TimeWaitSYNScenario(), HalfOpenScenario(),
    ]

    public static func scenario(named name: String) -> (any LabScenario)? {
        scenarios.first { $0.name == name }
    }
}
