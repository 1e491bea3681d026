import LingerCore
@preconcurrency import Glibc

/// A client churning connections to one destination across a real link with a small ephemeral range:
/// connect() fails with EADDRNOTAVAIL once the range is spent on TIME_WAIT; persistent connections, more
/// destination ports, more source addresses or tcp_tw_reuse lift the ceiling. Plus the load-balancer case:
/// the same churn through HAProxy leaves TIME_WAIT on the proxy's backend side.
public struct PortExhaustionScenario: LabScenario {
    public let name = "port-exhaustion"
    public let summary = "short connections to one destination run out of ephemeral ports (EADDRNOTAVAIL)"
    public let claim = "An ephemeral port is unique per (source, destination, destination port), and a client that "
        + "closes first holds each for 60 s in TIME_WAIT, so a range of P ports sustains P ÷ 60 s new connections per "
        + "destination: past that connect() fails with EADDRNOTAVAIL after about P ÷ rate seconds; reusing "
        + "connections, more destination ports, more source addresses, or tcp_tw_reuse lift the ceiling. Through a "
        + "TCP proxy the TIME_WAIT of the backend connections collects on the proxy."
    public let source = "Linux net/ipv4/inet_hashtables.c: __inet_hash_connect() and __inet_check_established() choose an ephemeral port per (source, destination, destination port); ip_local_port_range and tcp_tw_reuse in ip-sysctl.rst."
    public init() {}

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let ports = 100, rate = 20, seconds = quick ? 8 : 20
        let far = try lab.makeFarNamespace(extraLabAddresses: ["10.77.0.3"])
        try lab.sysctl("net.ipv4.ip_local_port_range", "40000 \(40000 + ports - 1)")
        try lab.sysctl("net.ipv4.tcp_tw_reuse", "0")
        try lab.sysctl("net.ipv4.tcp_rfc1337", "1")
        lab.progress("port-exhaustion: \(ports) ephemeral ports, \(rate) new connections/s for \(seconds) s over a veth link")
        for port in 7601...7607 {
            _ = try lab.peer(["server", "--host", "10.77.0.2", "--port", "\(port)", "--behavior", "close-on-eof"], in: far)
        }
        struct Variant { var name: String; var arguments: [String]; var spread: Int }
        let variants = [
            Variant(name: "one-connection-per-request", arguments: ["--port", "7601"], spread: 1),
            Variant(name: "persistent-connection", arguments: ["--port", "7602", "--persistent", "1"], spread: 0),
            Variant(name: "two-destination-ports", arguments: ["--port", "7603", "--ports", "7603,7604"], spread: 2),
            Variant(name: "two-source-addresses", arguments: ["--port", "7605", "--sources", "10.77.0.1,10.77.0.3"], spread: 2),
        ]
        var processes: [(Variant, LabProcess)] = []
        for variant in variants {
            let (process, _) = try lab.peer(["churn", "--host", "10.77.0.2", "--rate", "\(rate)", "--seconds", "\(seconds)", "--closer", "client"] + variant.arguments)
            processes.append((variant, process))
        }
        var done: [String?] = Array(repeating: nil, count: processes.count)
        var series: [String: LabSeries] = [:]
        try lab.sample(every: 0.25, for: Double(seconds) + 30, into: &series, until: {
            for i in processes.indices where done[i] == nil { done[i] = try processes[i].1.readLine(timeout: 0.01) }
            return !done.contains(nil)
        }) { snapshot in
            [
                "one-connection-per-request (TIME_WAIT, of \(ports) ports)": Double(snapshot.count(.timeWait) { $0.remote.port == 7601 }),
                "persistent-connection (TIME_WAIT)": Double(snapshot.count(.timeWait) { $0.remote.port == 7602 }),
                "two-destination-ports (TIME_WAIT)": Double(snapshot.count(.timeWait) { $0.remote.port == 7603 || $0.remote.port == 7604 }),
                "two-source-addresses (TIME_WAIT)": Double(snapshot.count(.timeWait) { $0.remote.port == 7605 }),
            ]
        }
        var results: [(Variant, [String: String])] = zip(processes, done).map { ($0.0, fields($1 ?? "")) }
        // tcp_tw_reuse is namespace-wide, so its variant runs after the others, on a fresh destination.
        try lab.sysctl("net.ipv4.tcp_tw_reuse", "1")
        let reuseVariant = Variant(name: "tcp_tw_reuse=1", arguments: ["--port", "7607"], spread: 1)
        let (reuse, _) = try lab.peer(["churn", "--host", "10.77.0.2", "--rate", "\(rate)", "--seconds", "\(seconds)", "--closer", "client"] + reuseVariant.arguments)
        let reuseDone = try lab.sample(while: reuse, every: 0.25, for: Double(seconds) + 30, into: &series) { snapshot in
            ["tcp_tw_reuse=1 (TIME_WAIT)": Double(snapshot.count(.timeWait) { $0.remote.port == 7607 })]
        }
        results.append((reuseVariant, fields(reuseDone)))

        let capacity = CapacityReport(CapacityInput(requestsPerSecond: Double(rate), usablePorts: ports))
        let predictedFirstFailure = Double(ports) / Double(rate)
        var measured: [LabVariant] = []
        var findings = [
            "Model (linger capacity): \(ports) ports ÷ 60 s = \((capacity.maxNewConnectionsPerSecondPerDestination * 100).rounded() / 100) new "
                + "connections/s per destination; at \(rate)/s the range is spent after \(predictedFirstFailure) s."
        ]
        var passed = true
        for (variant, f) in results {
            let failed = Int(f["failed"] ?? "") ?? -1
            let firstAt = Double(f["firstFailureAt"] ?? "") ?? -1
            // Spreading over k destination ports or source addresses multiplies the budget by k; a persistent
            // connection or tcp_tw_reuse removes the 60 s hold, so no failure is expected at all.
            let predicted: Double? = variant.spread == 0 || variant.name == "tcp_tw_reuse=1" ? nil : predictedFirstFailure * Double(variant.spread)
            measured.append(LabVariant(variant.name, [
                ("requests", number(Int(f["requests"] ?? "") ?? 0)), ("failed", number(failed)),
                ("firstError", .string(f["firstError"] ?? "?")), ("firstFailureAtSeconds", number(firstAt)),
                ("predictedFirstFailureAtSeconds", predicted.map(number) ?? .null),
            ]))
            if let predicted, predicted < Double(seconds) {
                let ok = f["firstError"] == "EADDRNOTAVAIL" && abs(firstAt - predicted) <= 0.3 * predicted
                passed = passed && ok
                findings.append("\(variant.name): connect() first failed with \(f["firstError"] ?? "?") after \((firstAt * 10).rounded() / 10) s "
                    + "(predicted \(predicted) s); \(failed) failures in \(seconds) s.")
            } else {
                passed = passed && failed == 0
                findings.append("\(variant.name): \(failed) failures in \(seconds) s"
                    + (predicted.map { " (the range would be spent after \($0) s)" } ?? " (no 60 s hold on the ports)") + ".")
            }
        }
        if let proxy = try haproxyVariant(lab: lab, far: far, rate: rate, seconds: quick ? 3 : 10, series: &series) {
            measured.append(proxy.0)
            findings.append(proxy.1)
            passed = passed && proxy.2
        } else {
            findings.append("HAProxy variant skipped: /usr/sbin/haproxy is not installed (apt-get install haproxy).")
        }
        return LabResult(variants: measured, passed: passed, findings: findings, series: Array(series.values))
    }

    /// The same churn through HAProxy in TCP mode (far namespace: 10.77.0.2:7700 → backend 127.0.0.1:7701).
    private func haproxyVariant(
        lab: LabContext, far: String, rate: Int, seconds: Int, series: inout [String: LabSeries]
    ) throws -> (LabVariant, String, Bool)? {
        guard access("/usr/sbin/haproxy", X_OK) == 0 else { return nil }
        let config = "/tmp/\(lab.namespace)-haproxy.cfg"
        let text = """
            global
                maxconn 1000
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend lab
                bind 10.77.0.2:7700
                default_backend app
            backend app
                server app1 127.0.0.1:7701

            """
        let fd = open(config, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw LabError("cannot write \(config)") }
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(config) }
        _ = try lab.peer(["server", "--host", "127.0.0.1", "--port", "7701", "--behavior", "close-on-eof"], in: far)
        let haproxy = try lab.program(["/usr/sbin/haproxy", "-db", "-f", config], in: far)
        try LabInterrupt.sleep(0.5)
        let (client, _) = try lab.peer(["churn", "--host", "10.77.0.2", "--port", "7700", "--rate", "\(rate)", "--seconds", "\(seconds)", "--closer", "client"])
        let line = try lab.sample(while: client, every: 0.25, for: Double(seconds) + 30, into: &series) { snapshot in
            // The client's side, in the lab's namespace; the proxy's own TIME_WAIT is counted in the far one below.
            ["through HAProxy (client TIME_WAIT)": Double(snapshot.count(.timeWait) { $0.remote.port == 7700 })]
        }
        let done = fields(line)
        try LabInterrupt.sleep(0.5)
        let backendTimeWait = try lab.count(in: far, state: "time-wait", filter: ["--remote-port", "7701"])
        let frontendTimeWait = try lab.count(in: far, state: "time-wait", filter: ["--local-port", "7700"])
        let clientTimeWait = try lab.snapshot().count(.timeWait) { $0.remote.port == 7700 }
        haproxy.signal()
        let requests = Int(done["requests"] ?? "") ?? 0
        let passed = requests > 0 && backendTimeWait >= requests * 9 / 10 && frontendTimeWait == 0
        return (
            LabVariant("through-haproxy", [
                ("requests", number(requests)), ("timeWaitAtClient", number(clientTimeWait)),
                ("timeWaitAtProxyFrontend", number(frontendTimeWait)), ("timeWaitAtProxyBackend", number(backendTimeWait)),
            ]),
            "Through HAProxy (TCP mode): \(requests) requests left \(clientTimeWait) TIME_WAIT at the client, \(frontendTimeWait) on the "
                + "proxy's frontend and \(backendTimeWait) on its backend connections: the proxy is the client of its backends "
                + "and closes first there, so its own ports toward the backend run out first.",
            passed)
    }
}
