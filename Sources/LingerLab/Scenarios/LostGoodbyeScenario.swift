import LingerCore

/// A server rejects a login: it writes "wrong password" and closes. Which close styles deliver the
/// message, under which conditions? Each cell is N real trials.
public struct LostGoodbyeScenario: LabScenario {
    public let name = "lost-goodbye"
    public let summary = "a server's last message before close: graceful close delivers it, RST can lose it"
    public let claim = "A graceful close (shutdown(SHUT_WR), read to EOF, close) delivers the server's last message "
        + "in every condition; an abortive close (SO_LINGER {1,0}, RST) loses it when the reply is still in the "
        + "server's send queue; a plain close() with unread client data resets the connection too (RFC 2525, "
        + "TCPAbortOnClose), which graceful close avoids by reading first."
    public let source = "Linux net/ipv4/tcp.c: tcp_close() sends RST when unread data remains (counter TCPAbortOnClose), and SO_LINGER {1, 0} aborts through tcp_disconnect(); RFC 2525 §2.17; netty issue #6818."
    public init() {}

    struct Condition {
        var name: String
        var replySize: Int
        var extraBytes: Int
        var readDelay: Int
        var serverWork = 0
    }

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let trials = quick ? 8 : 50
        let conditions = [
            // The reply reaches the client's receive queue before the close.
            Condition(name: "prompt-reader", replySize: 0, extraBytes: 0, readDelay: 0),
            // The reply is still in the server's send queue at the close: the client reads slowly.
            Condition(name: "reply-in-send-queue", replySize: 32 << 20, extraBytes: 0, readDelay: 100),
            // The client sent more than the server read, and it has arrived when the server closes.
            Condition(name: "unread-client-data", replySize: 0, extraBytes: 64 << 10, readDelay: 100, serverWork: 50),
            // Both: unread data at the server and a reply still queued.
            Condition(name: "unread-data-and-queued-reply", replySize: 32 << 20, extraBytes: 64 << 10, readDelay: 100, serverWork: 50),
        ]
        let styles = ["abortive", "close", "graceful"]
        lab.progress("lost-goodbye: \(styles.count) close styles × \(conditions.count) conditions × \(trials) trials")
        var cells: [String: [String: (Int, Int)]] = [:]  // style → condition → (delivered, resets)
        var aborts: [String: [String: (Int64, Int64)]] = [:]  // style → condition → (TCPAbortOnClose, TCPAbortOnData) Δ
        var port = 7500
        for style in styles {
            for condition in conditions {
                port += 1
                let before = try lab.snapshot().counters
                let (server, _) = try lab.peer(["goodbye-server", "--port", "\(port)", "--style", style, "--reply-size", "\(condition.replySize)",
                                             "--work-ms", "\(condition.serverWork)"])
                let (client, _) = try lab.peer([
                    "goodbye-client", "--port", "\(port)", "--trials", "\(trials)", "--extra-bytes", "\(condition.extraBytes)",
                    "--read-delay-ms", "\(condition.readDelay)",
                ])
                let done = fields(try client.expectLine("done", timeout: 120))
                cells[style, default: [:]][condition.name] = (Int(done["delivered"] ?? "") ?? -1, Int(done["resets"] ?? "") ?? -1)
                client.signal()
                client.finish()
                server.signal()
                server.finish()
                let after = try lab.snapshot().counters
                func delta(_ name: String) -> Int64 { (after[name] ?? 0) - (before[name] ?? 0) }
                aborts[style, default: [:]][condition.name] = (delta("TcpExt:TCPAbortOnClose"), delta("TcpExt:TCPAbortOnData"))
            }
        }
        let gracefulAlways = conditions.allSatisfy { cells["graceful"]?[$0.name]?.0 == trials }
        let abortiveLoses = conditions.contains { (cells["abortive"]?[$0.name]?.0 ?? trials) < trials }
        // The kernel's own count: close() with unread data sends RST and increments TCPAbortOnClose.
        let plainResets = (aborts["close"]?["unread-client-data"]?.0 ?? 0) > 0
        let plainLosesQueuedReply = (cells["close"]?["unread-data-and-queued-reply"]?.0 ?? trials) < trials
        let gracefulNeverResets = conditions.allSatisfy { (aborts["graceful"]?[$0.name]?.0 ?? 1) == 0 }
        var findings: [String] = []
        for style in styles {
            let row = conditions.map { c in
                let (delivered, resets) = cells[style]?[c.name] ?? (0, 0)
                let (onClose, onData) = aborts[style]?[c.name] ?? (0, 0)
                return "\(c.name) \(delivered)/\(trials)" + (resets > 0 ? " (client saw \(resets) resets)" : "")
                    + (onClose + onData > 0 ? " [kernel: TCPAbortOnClose +\(onClose), TCPAbortOnData +\(onData)]" : "")
            }.joined(separator: ", ")
            findings.append("\(style): " + row)
        }
        // What the runs say about the folklore, whichever way it came out.
        let promptAbortive = cells["abortive"]?["prompt-reader"]?.0 ?? 0
        findings.append(
            promptAbortive == trials
                ? "On Linux the RST did not destroy a small reply that had already reached the client's receive queue: "
                    + "the client read it before seeing ECONNRESET. The loss needs the reply to still be queued at the server."
                : "Even a small, promptly read reply was lost to the RST in \(trials - promptAbortive) of \(trials) trials.")
        let variants = styles.map { style in
            LabVariant(style, conditions.flatMap { c -> [(String, JSONValue)] in
                let (delivered, resets) = cells[style]?[c.name] ?? (0, 0)
                let (onClose, onData) = aborts[style]?[c.name] ?? (0, 0)
                return [("\(c.name).delivered", number(delivered)), ("\(c.name).resets", number(resets)),
                        ("\(c.name).TCPAbortOnClose", number(onClose)), ("\(c.name).TCPAbortOnData", number(onData))]
            } + [("trials", number(trials))])
        }
        let plainLost = trials - (cells["close"]?["unread-client-data"]?.0 ?? trials)
        findings.append(
            "A plain close() with unread client data: the kernel counted \(aborts["close"]?["unread-client-data"]?.0 ?? 0) RSTs "
                + "(TCPAbortOnClose), and \(plainLost) of \(trials) goodbyes were lost; graceful close read the data first and sent FIN every time.")
        return LabResult(
            variants: variants,
            passed: gracefulAlways && gracefulNeverResets && abortiveLoses && plainResets && plainLosesQueuedReply,
            findings: findings,
            bars: LabBarChart(
                title: "lost-goodbye: the server's last message, delivered or lost, of \(trials) trials",
                unit: "trials", outcomes: ["delivered", "lost"],
                groups: styles.flatMap { style in
                    conditions.map { c in
                        let delivered = cells[style]?[c.name]?.0 ?? 0
                        return (name: "\(style) / \(c.name)", values: [Double(delivered), Double(trials - delivered)])
                    }
                }))
    }
}
