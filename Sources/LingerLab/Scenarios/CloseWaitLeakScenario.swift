import LingerCore

/// A client that reconnects in a loop against a server that closes first. The naive client never closes
/// after the peer's FIN: CLOSE_WAIT grows with every reconnect until connect() fails (EMFILE under a
/// lowered fd limit). The correct client closes on EOF and stays at zero. Variant: a server whose error
/// path returns without closing.
public struct CloseWaitLeakScenario: LabScenario {
    public let name = "close-wait-leak"
    public let summary = "a client that never closes after the peer's FIN piles up CLOSE_WAIT until connects fail"
    public let claim = "CLOSE_WAIT has no kernel timer: a socket whose peer closed stays in CLOSE_WAIT until the "
        + "application closes it, so a client that reconnects without closing leaks one socket and one fd per "
        + "reconnect until it hits its fd limit; closing on EOF keeps it at zero. SO_REUSEADDR plays no part."
    public let source = "Linux net/ipv4/tcp.c: tcp_close() is the only way out of CLOSE_WAIT, and no timer runs in that state (tcp(7); RFC 9293 §3.3.2)."
    public init() {}

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let connections = quick ? 80 : 400
        let fdLimit = quick ? 64 : 256
        let interval = quick ? 5 : 20
        lab.progress("close-wait-leak: \(connections) reconnects each, naive client limited to \(fdLimit) fds")
        // One server port per client, so the chart can tell their sockets apart without looking up owners.
        _ = try lab.peer(["server", "--port", "7001", "--behavior", "close-first"])
        _ = try lab.peer(["server", "--port", "7003", "--behavior", "close-first"])
        let (naive, _) = try lab.peer(["reconnect-client", "--port", "7001", "--mode", "naive", "--connections", "\(connections)",
                                        "--fd-limit", "\(fdLimit)", "--interval-ms", "\(interval)"])
        let (correct, _) = try lab.peer(["reconnect-client", "--port", "7003", "--mode", "correct", "--connections", "\(connections)",
                                          "--fd-limit", "\(fdLimit)", "--interval-ms", "\(interval)"])
        var series: [String: LabSeries] = [:]
        var naiveDone: String?, correctDone: String?
        try lab.sample(every: 0.1, for: Double(connections * interval) / 1000 + 20, into: &series, until: {
            if naiveDone == nil { naiveDone = try naive.readLine(timeout: 0.01) }
            if correctDone == nil { correctDone = try correct.readLine(timeout: 0.01) }
            return naiveDone != nil && correctDone != nil
        }) { snapshot in
            // The clients connect from ephemeral ports; their CLOSE_WAIT sockets have the server's port as remote port.
            ["naive client CLOSE_WAIT": Double(snapshot.count(.closeWait) { $0.remote.port == 7001 && $0.local.port != 7001 }),
             "correct client CLOSE_WAIT": Double(snapshot.count(.closeWait) { $0.remote.port == 7003 && $0.local.port != 7003 })]
        }
        let snapshot = try lab.snapshot(owners: TCPStateSet(.closeWait))
        let naiveFields = fields(naiveDone ?? ""), correctFields = fields(correctDone ?? "")
        let naiveCloseWait = snapshot.count(.closeWait) { $0.owners.contains { $0.pid == naive.pid } }
        let correctCloseWait = snapshot.count(.closeWait) { $0.owners.contains { $0.pid == correct.pid } }
        let diagnosis = Doctor().diagnose(snapshot)
        let doctorNamesNaive = diagnosis.findings.contains { $0.id == "close-wait" && $0.evidence["pid"] == .int(Int64(naive.pid)) }

        // Variant: the server's error path forgets to close.
        _ = try lab.peer(["server", "--port", "7002", "--behavior", "exception-leak"])
        let errors = 12
        _ = try lab.peer(["clients", "--port", "7002", "--count", "\(errors)", "--send", "bad request", "--then", "close"])
        try lab.sample(every: 0.1, for: 0.5, into: &series) { snapshot in
            ["server CLOSE_WAIT (error path without close)": Double(snapshot.count(.closeWait) { $0.local.port == 7002 })]
        }
        let after = try lab.snapshot()
        let serverCloseWait = after.count(.closeWait) { $0.local.port == 7002 }
        let clientFinWait2 = after.count(.finWait2) { $0.remote.port == 7002 }

        let naiveConnected = Int(naiveFields["connected"] ?? "") ?? 0
        let passed = naiveCloseWait >= naiveConnected - 2 && naiveConnected > 0
            && (naiveFields["firstError"] == "EMFILE") && correctCloseWait == 0 && (Int(correctFields["failed"] ?? "") ?? -1) == 0
            && serverCloseWait == errors && clientFinWait2 == errors
        return LabResult(
            variants: [
                LabVariant("naive", [
                    ("connects", number(naiveConnected)), ("failed", number(Int(naiveFields["failed"] ?? "") ?? 0)),
                    ("firstError", .string(naiveFields["firstError"] ?? "?")), ("firstFailureAt", number(Int(naiveFields["failedAt"] ?? "") ?? -1)),
                    ("closeWait", number(naiveCloseWait)), ("fdLimit", number(fdLimit)), ("doctorNamesIt", .bool(doctorNamesNaive)),
                ]),
                LabVariant("correct", [
                    ("connects", number(Int(correctFields["connected"] ?? "") ?? 0)), ("failed", number(Int(correctFields["failed"] ?? "") ?? 0)),
                    ("closeWait", number(correctCloseWait)),
                ]),
                LabVariant("server-error-path", [
                    ("requestsHittingTheErrorPath", number(errors)), ("serverCloseWait", number(serverCloseWait)),
                    ("clientFinWait2", number(clientFinWait2)),
                ]),
            ],
            passed: passed,
            findings: [
                "The naive client holds \(naiveCloseWait) sockets in CLOSE_WAIT after \(naiveConnected) connects; its connect() "
                    + "started failing with \(naiveFields["firstError"] ?? "?") at attempt \(naiveFields["failedAt"] ?? "?") (fd limit \(fdLimit)).",
                "The correct client (close on EOF) holds \(correctCloseWait) and never failed.",
                "linger doctor \(doctorNamesNaive ? "names" : "does NOT name") the naive client's pid in its close-wait finding.",
                "A server that returns from an error path without closing leaves \(serverCloseWait) CLOSE_WAIT on its side "
                    + "and \(clientFinWait2) FIN_WAIT2 at its clients.",
            ],
            series: Array(series.values))
    }
}
