import LingerCore

/// A server restarted while its old connections sit in TIME_WAIT: bind() fails with EADDRINUSE unless
/// SO_REUSEADDR was set — on the new listener *and* on the old one (TIME_WAIT inherits the flag).
public struct ReuseAddrRestartScenario: LabScenario {
    public let name = "reuseaddr-restart"
    public let summary = "restarting a server over its own TIME_WAIT: EADDRINUSE without SO_REUSEADDR"
    public let claim = "While a server's old connections sit in TIME_WAIT on its port, bind() fails with EADDRINUSE "
        + "unless both the old and the new listener set SO_REUSEADDR (a TIME_WAIT socket keeps its listener's flag)."
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
        return LabResult(variants: variants, passed: passed, findings: findings)
    }
}
