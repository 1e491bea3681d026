import LingerCore

/// A new SYN for a 4-tuple still in TIME_WAIT, crafted on a raw socket: the kernel accepts it (SYN-ACK)
/// when its sequence number or timestamp is newer than the old connection's, and answers with the
/// TIME_WAIT's ACK otherwise (FACTS §2.2, tcp_timewait_state_process).
public struct TimeWaitSYNScenario: LabScenario {
    public let name = "time-wait-syn"
    public let summary = "a SYN for a TIME_WAIT 4-tuple: accepted when its sequence or timestamp is newer"
    public let claim = "Linux accepts a new SYN for a 4-tuple in TIME_WAIT (answering SYN-ACK) when its sequence number "
        + "is after the old connection's, or when it carries a timestamp newer than the old connection's; otherwise "
        + "the TIME_WAIT answers with an ACK and the SYN opens nothing."
    public let source = "Linux net/ipv4/tcp_minisocks.c: tcp_timewait_state_process(); RFC 1122 §4.2.2.13 (a newer sequence number), RFC 6191 (a newer timestamp)."
    public init() {}

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        _ = try lab.peer(["server", "--port", "7801", "--behavior", "close-first"])
        let cases: [(name: String, sequence: String, timestamp: String, expected: String)] = [
            ("newer-sequence", "newer", "none", "SYN+ACK"),
            ("older-sequence", "older", "none", "ACK"),
            ("older-sequence-newer-timestamp", "older", "newer", "SYN+ACK"),
            ("newer-sequence-older-timestamp", "newer", "older", "ACK"),
        ]
        var variants: [LabVariant] = []
        var findings: [String] = []
        var passed = true
        for (index, c) in cases.enumerated() {
            let clientPort = 45001 + index
            let (_, line) = try lab.peer([
                "tw-syn", "--port", "7801", "--client-port", "\(clientPort)", "--sequence", c.sequence, "--timestamp", c.timestamp,
            ])
            let f = fields(line)
            let answer = f["answer"] ?? "none"
            passed = passed && answer == c.expected
            variants.append(LabVariant(c.name, [
                ("synSequence", .string(c.sequence)), ("synTimestamp", .string(c.timestamp)),
                ("oldConnectionUsedTimestamps", .bool(f["oldTimestamps"] == "true")),
                ("kernelAnswered", .string(answer)), ("expected", .string(c.expected)),
            ]))
            findings.append("\(c.name): a SYN with a \(c.sequence) sequence number and \(c.timestamp == "none" ? "no" : "a \(c.timestamp)") "
                + "timestamp got \(answer) (expected \(c.expected)).")
        }
        // The PAWS rejection of the last case is counted by the kernel too (PAWSTimewait on 6.x kernels).
        let counters = try lab.snapshot().counters
        let paws = counters["TcpExt:PAWSTimewait"] ?? counters["TcpExt:PAWSEstab"] ?? 0
        variants.append(LabVariant("kernel-counters", [("PAWSTimewait", number(Int(paws)))]))
        findings.append("TcpExt PAWSTimewait (TIME_WAIT segments rejected for an old timestamp) = \(paws) in the lab's namespace.")
        // One SYN per kind: the bars show which answer each kind drew, beside the answer the claim expects.
        let answers = ["SYN+ACK", "ACK", "none"]
        let groups = cases.indices.map { index in
            let answer = variants[index].measurements.first { $0.0 == "kernelAnswered" }?.1
            return (name: cases[index].name, values: answers.map { answer == .string($0) ? 1.0 : 0 })
        }
        return LabResult(variants: variants, passed: passed, findings: findings, bars: LabBarChart(
            title: "time-wait-syn: what the TIME_WAIT answered, per kind of SYN", unit: "answers",
            outcomes: answers, groups: groups))
    }
}
