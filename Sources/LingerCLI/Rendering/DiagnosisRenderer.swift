import LingerCore

/// Renders the doctor's verdict: findings most severe first, each with evidence, cause and remedy.
struct DiagnosisRenderer {
    var diagnosis: Diagnosis
    var snapshot: Snapshot
    var namespace: String?

    func text() -> String {
        var lines: [String] = []
        let where_ = namespace.map { " in network namespace \($0)" } ?? ""
        for finding in diagnosis.findings {
            lines.append("\(finding.severity.name.uppercased())  [\(finding.id)]  \(finding.summary)")
            for line in finding.evidenceLines { lines.append("    " + line) }
            lines.append("  cause:  " + finding.cause)
            lines.append("  fix:    " + finding.remedy)
            lines.append("")
        }
        let counts = TCPState.allCases.compactMap { state -> String? in
            let n = diagnosis.counts[state] ?? 0
            return n > 0 ? "\(state.kernelName) \(n)" : nil
        }.joined(separator: ", ")
        let countText = "\(diagnosis.total) TCP sockets\(where_)" + (counts.isEmpty ? "" : " (\(counts))")
        switch diagnosis.status {
        case .healthy:
            let notes = diagnosis.findings.isEmpty ? "" : "; \(diagnosis.findings.count) note(s) above"
            lines.append("healthy: \(countText); nothing to fix\(notes).")
        case .warning, .critical:
            let critical = diagnosis.findings.filter { $0.severity == .critical }.count
            let warnings = diagnosis.findings.filter { $0.severity == .warning }.count
            lines.append("\(diagnosis.status.rawValue): \(critical) critical, \(warnings) warning(s); \(countText).")
        }
        if let coverage = snapshot.attribution, coverage.processesDenied > 0 {
            lines.append(
                "note: the fds of \(coverage.processesDenied) processes could not be read (other users'); "
                    + "run as root to name every owner.")
        }
        return lines.joined(separator: "\n")
    }

    func json() -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("status", .string(diagnosis.status.rawValue)),
            ("findings", .array(diagnosis.findings.map { finding in
                .object([
                    ("id", .string(finding.id)),
                    ("severity", .string(finding.severity.name)),
                    ("summary", .string(finding.summary)),
                    ("evidence", finding.evidence),
                    ("cause", .string(finding.cause)),
                    ("remedy", .string(finding.remedy)),
                ])
            })),
            ("counts", .object([
                ("total", .number(diagnosis.total)),
                ("states", SummaryRenderer.statesJSON(diagnosis.counts)),
            ])),
            ("takenAt", .string(Timestamp.iso8601(snapshot.takenAt))),
            ("source", .string(snapshot.source.rawValue)),
            ("namespace", namespace.map(JSONValue.string) ?? .null),
        ]
        if let coverage = snapshot.attribution {
            fields.append(("attribution", .object([
                ("processesScanned", .number(coverage.processesScanned)),
                ("processesDenied", .number(coverage.processesDenied)),
            ])))
        }
        return .object(fields)
    }
}
