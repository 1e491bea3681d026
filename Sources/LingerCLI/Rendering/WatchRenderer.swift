import LingerCore

/// Renders one interval of `linger watch`: a screen, a line, or a JSON object.
struct WatchRenderer {
    var report: WatchReport
    var interval: Double
    var namespace: String?

    private func delta(_ state: TCPState) -> String {
        guard let d = report.deltas?[state] else { return "" }
        return d > 0 ? "+\(d)" : "\(d)"
    }

    private func age(_ seconds: Double) -> String {
        seconds >= 3600 ? "\(Int(seconds / 3600))h\(Int(seconds) % 3600 / 60)m" : seconds >= 60 ? "\(Int(seconds / 60))m\(Int(seconds) % 60)s" : "\(Int(seconds))s"
    }

    func screen() -> String {
        var lines = ["linger watch  \(Timestamp.iso8601(report.takenAt))  every \(interval) s" + (namespace.map { "  netns \($0)" } ?? "") + "  (Ctrl-C to stop)", ""]
        lines.append("STATE".padding(14) + "COUNT".leftPadding(8) + "CHANGE".leftPadding(9))
        for state in TCPState.allCases where (report.counts[state] ?? 0) > 0 || (report.deltas?[state] ?? 0) != 0 {
            lines.append(state.kernelName.padding(14) + String(report.counts[state] ?? 0).leftPadding(8) + delta(state).leftPadding(9))
        }
        lines.append("")
        if report.closeWaitByProcess.isEmpty && report.unownedCloseWait == 0 {
            lines.append("CLOSE_WAIT: none")
        } else {
            lines.append("CLOSE_WAIT by process".padding(34) + "COUNT".leftPadding(7) + "OLDEST".leftPadding(9) + "PER MIN".leftPadding(9) + "  LEAK")
            for p in report.closeWaitByProcess.prefix(10) {
                // "≥" marks an age counted from when this watch first saw the socket: the real one may be longer.
                let oldest = (p.oldestAgeSource == .firstSeen ? "≥" : "") + age(p.oldestAgeSeconds)
                lines.append("\(p.name) (pid \(p.pid))".padding(34) + String(p.count).leftPadding(7) + oldest.leftPadding(9)
                    + String(Int(p.growthPerMinute.rounded())).leftPadding(9) + "  " + (p.leakReason ?? "-"))
            }
            if report.unownedCloseWait > 0 { lines.append("(owner unknown)".padding(34) + String(report.unownedCloseWait).leftPadding(7)) }
        }
        lines.append("")
        if report.timeWaitByDestination.isEmpty {
            lines.append("TIME_WAIT toward destinations: none")
        } else {
            lines.append("TIME_WAIT by destination".padding(44) + "COUNT".leftPadding(7) + "PORTS USED".leftPadding(12))
            for d in report.timeWaitByDestination.prefix(8) {
                lines.append("\(d.local) -> \(Endpoint(address: d.remote, port: d.remotePort))".padding(44) + String(d.count).leftPadding(7)
                    + (d.portShare.map { percentText($0) } ?? "?").leftPadding(12))
            }
        }
        lines.append("")
        if report.findings.isEmpty {
            lines.append("doctor: healthy")
        } else {
            for f in report.findings.prefix(6) { lines.append("\(f.severity.name.uppercased()) [\(f.id)] \(f.summary)") }
        }
        return lines.joined(separator: "\n")
    }

    func line() -> String {
        var parts = [Timestamp.iso8601(report.takenAt)]
        for state in TCPState.allCases where (report.counts[state] ?? 0) > 0 || (report.deltas?[state] ?? 0) != 0 {
            let d = delta(state)
            parts.append("\(state.kernelName)=\(report.counts[state] ?? 0)" + (d.isEmpty || d == "0" ? "" : "(\(d))"))
        }
        if !report.leaks.isEmpty {
            parts.append("leaks: " + report.leaks.map { "\($0.name)[\($0.pid)] \($0.count) CLOSE_WAIT oldest \(age($0.oldestAgeSeconds)) \(Int($0.growthPerMinute.rounded()))/min" }.joined(separator: ", "))
        }
        if let top = report.timeWaitByDestination.first {
            parts.append("top TIME_WAIT \(Endpoint(address: top.remote, port: top.remotePort)) \(top.count)" + (top.portShare.map { " (\(percentText($0)) of ports)" } ?? ""))
        }
        if let worst = report.findings.first { parts.append("doctor: \(worst.severity.name) \(worst.id)") }
        return parts.joined(separator: "  ")
    }

    func json() -> JSONValue {
        let closeWait: [JSONValue] = report.closeWaitByProcess.map { p in
            let fields: [(String, JSONValue)] = [
                ("pid", .number(p.pid)), ("process", .string(p.name)), ("count", .number(p.count)),
                ("oldestAgeSeconds", .double((p.oldestAgeSeconds * 10).rounded() / 10)),
                ("oldestAgeSource", .string(p.oldestAgeSource.rawValue)),
                ("growthPerMinute", .double((p.growthPerMinute * 10).rounded() / 10)),
                ("leak", .bool(p.leakReason != nil)), ("reason", p.leakReason.map(JSONValue.string) ?? .null),
            ]
            return .object(fields)
        }
        let timeWait: [JSONValue] = report.timeWaitByDestination.prefix(20).map { d in
            let share: JSONValue = d.portShare.map { .double(($0 * 1000).rounded() / 1000) } ?? .null
            let fields: [(String, JSONValue)] = [
                ("local", .string(d.local.description)), ("remote", .string(d.remote.description)),
                ("remotePort", .number(d.remotePort)), ("count", .number(d.count)), ("portShare", share),
            ]
            return .object(fields)
        }
        let findings: [JSONValue] = report.findings.map { f in
            .object([("id", .string(f.id)), ("severity", .string(f.severity.name)), ("summary", .string(f.summary))])
        }
        let deltas: JSONValue = report.deltas.map(SummaryRenderer.statesJSON) ?? .null
        return .object([
            ("takenAt", .string(Timestamp.iso8601(report.takenAt))),
            ("counts", SummaryRenderer.statesJSON(report.counts)),
            ("deltas", deltas),
            ("closeWait", .array(closeWait)),
            ("unownedCloseWait", .number(report.unownedCloseWait)),
            ("timeWait", .array(timeWait)),
            ("findings", .array(findings)),
        ])
    }

    private func percentText(_ share: Double) -> String {
        let tenths = Int((share * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }
}
