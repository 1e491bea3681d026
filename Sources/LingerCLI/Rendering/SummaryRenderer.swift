import LingerCore

/// Counts by state, and by process with `-p`: `linger sockets --summary`.
///
/// JSON shape: `{"total": N, "states": {every state: count, zeros included}, "processes": [...]}`; each
/// process entry has `pid`, `name`, `total` and the same full `states` object. Sockets no process holds
/// (TIME_WAIT, orphans, or owners that could not be read) are one entry with `pid` and `name` null.
struct SummaryRenderer {
    struct ProcessCounts {
        var pid: Int32?
        var name: String?
        var counts: [TCPState: Int] = [:]
        var total: Int { counts.values.reduce(0, +) }
    }

    var byProcess: Bool

    func processCounts(_ records: [SocketRecord]) -> [ProcessCounts] {
        var table = [Int32: ProcessCounts]()
        var unowned = ProcessCounts()
        for record in records {
            guard !record.owners.isEmpty else {
                unowned.counts[record.state, default: 0] += 1
                continue
            }
            // A socket shared by several processes counts once for each distinct holder.
            var seen = Set<Int32>()
            for owner in record.owners where seen.insert(owner.pid).inserted {
                table[owner.pid, default: ProcessCounts(pid: owner.pid, name: owner.name)].counts[record.state, default: 0] += 1
            }
        }
        var result = table.values.sorted { $0.total != $1.total ? $0.total > $1.total : ($0.pid ?? 0) < ($1.pid ?? 0) }
        if unowned.total > 0 { result.append(unowned) }
        return result
    }

    func json(_ records: [SocketRecord]) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("total", .number(records.count)),
            ("states", Self.statesJSON(countStates(records))),
        ]
        if byProcess {
            fields.append(("processes", .array(processCounts(records).map { entry in
                .object([
                    ("pid", entry.pid.map { .number($0) } ?? .null),
                    ("name", entry.name.map(JSONValue.string) ?? .null),
                    ("total", .number(entry.total)),
                    ("states", Self.statesJSON(entry.counts)),
                ])
            })))
        }
        return .object(fields)
    }

    func text(_ records: [SocketRecord]) -> String {
        let counts = countStates(records)
        var lines = ["Total: \(records.count)"]
        for state in TCPState.allCases where (counts[state] ?? 0) > 0 {
            lines.append("  " + state.kernelName.padding(13) + String(counts[state] ?? 0).leftPadding(8))
        }
        if byProcess {
            lines.append("")
            lines.append("PID".leftPadding(8) + "  " + "Process".padding(16) + "Total".leftPadding(8) + "  States")
            for entry in processCounts(records) {
                let states = TCPState.allCases.compactMap { state in
                    (entry.counts[state] ?? 0) > 0 ? "\(state.kernelName) \(entry.counts[state]!)" : nil
                }.joined(separator: ", ")
                lines.append(
                    (entry.pid.map(String.init) ?? "-").leftPadding(8) + "  "
                        + (entry.name ?? "(no process)").padding(16) + String(entry.total).leftPadding(8) + "  " + states)
            }
        }
        return lines.joined(separator: "\n")
    }

    private func countStates(_ records: [SocketRecord]) -> [TCPState: Int] {
        var counts = [TCPState: Int]()
        for record in records { counts[record.state, default: 0] += 1 }
        return counts
    }

    static func statesJSON(_ counts: [TCPState: Int]) -> JSONValue {
        .object(TCPState.allCases.map { ($0.kernelName, .number(counts[$0] ?? 0)) })
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
