import LingerCore

extension LabContext {
    /// Samples `measure` every `interval` seconds until `until` returns true or `limit` seconds pass,
    /// appending to `series` (one line per key).
    func sample(
        every interval: Double, for limit: Double, into series: inout [String: LabSeries],
        until done: () throws -> Bool = { false }, measure: (Snapshot) -> [String: Double]
    ) throws {
        let deadline = elapsed + limit
        var lastProgress = elapsed
        while elapsed < deadline {
            let snapshot = try self.snapshot()
            let now = elapsed
            for (key, value) in measure(snapshot) {
                series[key, default: LabSeries(name: key)].points.append((now, value))
            }
            if now - lastProgress >= 5 {
                progress("  \(Int(now)) s: " + measure(snapshot).sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value))" }.joined(separator: ", "))
                lastProgress = now
            }
            if try done() { return }
            try LabInterrupt.sleep(interval)
        }
    }
}

extension LabContext {
    /// Samples while `peer` works, until it reports `done …`, and returns that line; the chart then shows the
    /// peer's whole run.
    func sample(
        while peer: LabProcess, every interval: Double, for limit: Double, into series: inout [String: LabSeries],
        measure: (Snapshot) -> [String: Double]
    ) throws -> String {
        var done: String?
        try sample(every: interval, for: limit, into: &series, until: {
            if let line = try peer.readLine(timeout: 0.01), line.hasPrefix("done") { done = line }
            return done != nil
        }, measure: measure)
        guard let done else { throw LabError("a lab peer (pid \(peer.pid)) did not report 'done' within \(Int(limit)) s") }
        return done
    }
}

extension Snapshot {
    func count(_ state: TCPState, where predicate: (SocketRecord) -> Bool = { _ in true }) -> Int {
        records.reduce(0) { $0 + ($1.state == state && predicate($1) ? 1 : 0) }
    }
}

func number(_ value: some BinaryInteger) -> JSONValue { .int(Int64(value)) }
func number(_ value: Double) -> JSONValue { .double((value * 100).rounded() / 100) }
