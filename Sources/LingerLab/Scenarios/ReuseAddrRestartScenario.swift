import LingerCore

/// A server restarted while its old connections sit in TIME_WAIT: bind() fails with EADDRINUSE unless
/// SO_REUSEADDR was set — on the new listener *and* on the old one (TIME_WAIT inherits the flag).
public struct ReuseAddrRestartScenario: LabScenario {
    public let name = "reuseaddr-restart"
    public let summary = "restarting a server over its own TIME_WAIT: EADDRINUSE without SO_REUSEADDR"
    public let claim = "While a server's old connections sit in TIME_WAIT on its port, bind() fails with EADDRINUSE "
        + "unless both the old and the new listener set SO_REUSEADDR (a TIME_WAIT socket keeps its listener's flag)."
    public let source = "Linux net/ipv4/inet_connection_sock.c: inet_bind_conflict(); a TIME_WAIT socket keeps its listener's sk_reuse (socket(7), SO_REUSEADDR)."
    public init() {}

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let cases: [(name: String, old: Int, new: Int, port: UInt16, expect: String)] = [
            ("naive", 0, 0, 7201, "EADDRINUSE"),
            ("correct", 1, 1, 7202, "ok"),
            ("only-new-listener", 0, 1, 7203, "EADDRINUSE"),
        ]
        var variants: [LabVariant] = []
        var findings: [String] = []
        var passed = true
        for c in cases {
            let (server, _) = try lab.peer(["server", "--port", "\(c.port)", "--behavior", "close-first", "--reuseaddr", "\(c.old)"])
            // The server greets and closes first, so every connection leaves TIME_WAIT on the server's port.
            _ = try lab.peer(["clients", "--port", "\(c.port)", "--count", "20", "--then", "wait-eof"])
            server.signal()
            server.finish()
            let timeWait = try lab.snapshot().count(.timeWait) { $0.local.port == c.port }
            let (bind, line) = try lab.peer(["bind", "--port", "\(c.port)", "--reuseaddr", "\(c.new)"])
            bind.finish()
            let result = fields(line)["bind"] ?? "?"
            passed = passed && result == c.expect && timeWait > 0
            variants.append(LabVariant(c.name, [
                ("oldListenerReuseAddr", .bool(c.old == 1)), ("newListenerReuseAddr", .bool(c.new == 1)),
                ("timeWaitOnPort", number(timeWait)), ("bind", .string(result)), ("expected", .string(c.expect)),
            ]))
            findings.append("\(c.name): \(timeWait) TIME_WAIT on port \(c.port); old listener SO_REUSEADDR=\(c.old), new \(c.new): bind → \(result)")
        }
        // Per case: the TIME_WAIT the old server left on its port, and whether the new one could bind over it.
        let groups = variants.map { variant in
            let value = { (key: String) in variant.measurements.first { $0.0 == key }?.1 }
            let timeWait: Double = if case .int(let count)? = value("timeWaitOnPort") { Double(count) } else { 0 }
            let bound = value("bind") == .string("ok")
            return (name: variant.name, values: [timeWait, bound ? timeWait : 0, bound ? 0 : timeWait])
        }
        return LabResult(variants: variants, passed: passed, findings: findings, bars: LabBarChart(
            title: "reuseaddr-restart: TIME_WAIT on the port, and whether the restarted server could bind over it",
            unit: "sockets", outcomes: ["TIME_WAIT on the port", "…and bind() succeeded", "…and bind() failed (EADDRINUSE)"],
            groups: groups))
    }
}
