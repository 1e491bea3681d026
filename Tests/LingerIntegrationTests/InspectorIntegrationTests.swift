import Foundation
import Testing

/// The inspector against real sockets in a real network namespace, checked against `ss`.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root and iproute2 to create network namespaces"))
struct InspectorIntegrationTests {
    /// A namespace holding every everyday state at once, with known counts.
    private func mixedNamespace() throws -> (TestNamespace, leaky: FixtureProcess, halfCloser: FixtureProcess) {
        let ns = try TestNamespace()
        let leaky = try ns.start(["server", "--port", "7001", "--on-eof", "hold"])
        _ = try ns.start(["clients", "--port", "7001", "--count", "40", "--then", "close"])
        let correct = try ns.start(["server", "--port", "7002"])
        _ = correct
        _ = try ns.start(["clients", "--port", "7002", "--count", "25", "--then", "hold"])
        _ = try ns.start(["clients", "--port", "7002", "--count", "30", "--then", "close"])
        let halfCloser = try ns.start(["clients", "--port", "7001", "--count", "6", "--then", "half-close"])
        try ns.waitFor("TIME_WAIT", atLeast: 30)
        try ns.waitFor("CLOSE_WAIT", atLeast: 46)
        return (ns, leaky, halfCloser)
    }

    // Serialized: the two cases count this process's fds, and must not see each other's.
    @Test(.serialized, arguments: ["netlink", "proc"])
    func summaryAgreesWithSsPerState(source: String) throws {
        func checkOnce() throws {
            let (ns, _, _) = try mixedNamespace()
            defer { ns.tearDown() }
            let result = try linger(["sockets", "--netns", ns.name, "--summary", "--json", "--source", source])
            #expect(result.status == 0, "\(result.stderr)")
            let json = try result.json()
            let states = try #require(json["states"] as? [String: Int])
            let reference = try ns.ssCounts()
            for (state, count) in states where count > 0 || reference[state] != nil {
                #expect(count == reference[state], "\(state): linger \(count), ss \(reference[state] ?? 0)")
            }
            #expect(json["total"] as? Int == reference.values.reduce(0, +))
            #expect(states["CLOSE_WAIT"] == 46 && states["TIME_WAIT"] == 30 && states["LISTEN"] == 2)
            #expect(states.count == 12, "every state is present, zeros included")
            #expect(try ns.stopFixturesAndCountCloseWait() == 0, "stopped fixtures leave no CLOSE_WAIT")
        }
        // The first run opens descriptors Foundation and Dispatch keep for good (spawning, pipes); a leak in the
        // harness would grow again on the second, identical run.
        try checkOnce()
        let fdsBefore = openFileDescriptorCount()
        try checkOnce()
        #expect(openFileDescriptorCount() == fdsBefore, "the harness leaked descriptors")
    }

    @Test func ownersAgreeWithSsP() throws {
        let (ns, leaky, _) = try mixedNamespace()
        defer { ns.tearDown() }
        let result = try linger(["sockets", "--netns", ns.name, "-p", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let sockets = try #require(try result.json()["sockets"] as? [[String: Any]])
        func key(_ endpoint: Any?) -> String {
            let e = endpoint as? [String: Any]
            return "\(e?["address"] ?? "?"):\(e?["port"] ?? "?")"
        }
        var ours = Set<String>()
        for socket in sockets {
            for owner in socket["processes"] as? [[String: Any]] ?? [] {
                ours.insert("\(key(socket["local"]))>\(key(socket["remote"])) \(owner["name"]!) \(owner["pid"]!) \(owner["fd"]!)")
            }
        }
        var theirs = Set<String>()
        let ss = try ns.exec(["ss", "-Htanp"])
        let pattern = try NSRegularExpression(pattern: #"\("([^"]+)",pid=(\d+),fd=(\d+)\)"#)
        for line in ss.stdout.split(separator: "\n").map(String.init) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 5 else { continue }
            let local = fields[3].replacingOccurrences(of: "*", with: "0"), remote = fields[4].replacingOccurrences(of: "*", with: "0")
            for match in pattern.matches(in: line, range: NSRange(line.startIndex..., in: line)) {
                let part = { (i: Int) in String(line[Range(match.range(at: i), in: line)!]) }
                theirs.insert("\(local)>\(remote) \(part(1)) \(part(2)) \(part(3))")
            }
        }
        #expect(!theirs.isEmpty)
        #expect(ours == theirs, "only linger: \(ours.subtracting(theirs).sorted().prefix(3)) only ss: \(theirs.subtracting(ours).sorted().prefix(3))")
        #expect(ours.contains { $0.hasSuffix(" \(leaky.pid) 3") }, "the leaky server's listener (fd 3) is attributed")

        let filtered = try linger(["sockets", "--netns", ns.name, "--pid", "\(leaky.pid)", "--state", "close-wait", "--json"])
        let held = try #require(try filtered.json()["sockets"] as? [[String: Any]])
        #expect(held.count == 46, "40 closed by their clients and 6 half-closed")
    }

    @Test(arguments: ["netlink", "proc"])
    func doctorNamesTheLeakingProcess(source: String) throws {
        let (ns, leaky, halfCloser) = try mixedNamespace()
        defer { ns.tearDown() }
        let result = try linger(["doctor", "--netns", ns.name, "--json", "--source", source])
        #expect(result.status == 2, "critical: \(result.stdout.prefix(400))")
        let json = try result.json()
        #expect(json["status"] as? String == "critical")
        let findings = try #require(json["findings"] as? [[String: Any]])
        let closeWait = try #require(findings.first { $0["id"] as? String == "close-wait" && $0["severity"] as? String == "critical" })
        let evidence = try #require(closeWait["evidence"] as? [String: Any])
        #expect(evidence["pid"] as? Int == Int(leaky.pid))
        #expect(evidence["process"] as? String == "linger-fixture")
        #expect(evidence["count"] as? Int == 46)
        #expect(evidence["localPorts"] as? [Int] == [7001])
        let finWait2 = try #require(findings.first { $0["id"] as? String == "fin-wait-2" })
        #expect((finWait2["evidence"] as? [String: Any])?["pid"] as? Int == Int(halfCloser.pid))
        #expect(findings.first == nil || findings.first?["severity"] as? String == "critical", "most severe first")

        let text = try linger(["doctor", "--netns", ns.name, "--source", source])
        #expect(text.status == 2)
        #expect(text.stdout.contains("linger-fixture (pid \(leaky.pid)) holds 46 sockets in CLOSE_WAIT on local port 7001"))
        #expect(text.stdout.contains("SO_REUSEADDR and SO_LINGER do not fix this"))
    }

    @Test func confirmProvesTheSocketsAreStuck() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        _ = try ns.start(["server", "--port", "7001", "--on-eof", "ignore"])
        _ = try ns.start(["clients", "--port", "7001", "--count", "8", "--then", "close"])
        try ns.waitFor("CLOSE_WAIT", atLeast: 8)
        let result = try linger(["doctor", "--netns", ns.name, "--json", "--confirm", "1"])
        #expect(result.status == 1, "warning: \(result.stdout.prefix(300))")
        let findings = try #require(try result.json()["findings"] as? [[String: Any]])
        let evidence = try #require(findings.first?["evidence"] as? [String: Any])
        #expect(evidence["stuck"] as? Int == 8)
        #expect(evidence["readEOF"] as? Int == 8, "the server read EOF and did not close: recv-Q 0")
    }

    @Test func doctorFindsEphemeralPortExhaustion() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        try ns.sysctl("net.ipv4.ip_local_port_range", "40000 40199")
        try ns.sysctl("net.ipv4.tcp_tw_reuse", "0")
        _ = try ns.start(["server", "--port", "7100"])
        let clients = try ns.start(["clients", "--port", "7100", "--count", "190", "--then", "close"])
        #expect(clients.value("connected") == "190")
        try ns.waitFor("TIME_WAIT", atLeast: 190)
        let result = try linger(["doctor", "--netns", ns.name, "--json"])
        #expect(result.status == 2, "\(result.stdout.prefix(400))")
        let findings = try #require(try result.json()["findings"] as? [[String: Any]])
        let ports = try #require(findings.first { $0["id"] as? String == "time-wait-ports" })
        #expect(ports["severity"] as? String == "critical")
        let evidence = try #require(ports["evidence"] as? [String: Any])
        #expect(evidence["remotePort"] as? Int == 7100)
        #expect(evidence["usablePorts"] as? Int == 200)
        #expect(evidence["timeWait"] as? Int == 190)
        #expect(evidence["closesFirst"] as? String == "client")
    }

    @Test func doctorFindsAFullAcceptQueue() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try ns.start(["server", "--port", "7200", "--backlog", "2", "--no-accept"])
        _ = try ns.start(["clients", "--port", "7200", "--count", "8", "--then", "hold", "--nonblocking"])
        usleep(500_000)
        let result = try linger(["doctor", "--netns", ns.name, "--json"])
        #expect(result.status == 2, "\(result.stdout.prefix(400))")
        let findings = try #require(try result.json()["findings"] as? [[String: Any]])
        let overflow = try #require(findings.first { $0["id"] as? String == "listen-overflow" })
        #expect(overflow["severity"] as? String == "critical")
        let evidence = try #require(overflow["evidence"] as? [String: Any])
        #expect(evidence["pid"] as? Int == Int(server.pid))
        #expect(evidence["backlog"] as? Int == 2)
        #expect(evidence["queued"] as? Int == 3)
        #expect((evidence["listenOverflows"] as? Int ?? 0) > 0)
    }

    @Test func doctorFindsConnectsThatNeverComplete() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        // 10.200.0.2 is "reachable" through a veth whose far end drops frames for an unknown MAC: SYNs vanish.
        try ns.ip(["-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        try ns.ip(["-n", ns.name, "addr", "add", "10.200.0.1/24", "dev", "v0"])
        try ns.ip(["-n", ns.name, "link", "set", "v0", "up"])
        try ns.ip(["-n", ns.name, "link", "set", "v1", "up"])
        try ns.ip(["-n", ns.name, "neigh", "add", "10.200.0.2", "lladdr", "02:00:00:00:00:01", "dev", "v0", "nud", "permanent"])
        let clients = try ns.start(["clients", "--address", "10.200.0.2", "--port", "80", "--count", "12", "--nonblocking"])
        let result = try linger(["doctor", "--netns", ns.name, "--json"])
        #expect(result.status == 1, "\(result.stdout.prefix(400))")
        let findings = try #require(try result.json()["findings"] as? [[String: Any]])
        let synSent = try #require(findings.first { $0["id"] as? String == "syn-sent" })
        let evidence = try #require(synSent["evidence"] as? [String: Any])
        #expect(evidence["remote"] as? String == "10.200.0.2:80" && evidence["count"] as? Int == 12)
        let processes = try #require(evidence["processes"] as? [[String: Any]])
        #expect(processes.first?["process"] as? String == "linger-fixture (pid \(clients.pid))")
    }

    @Test func healthyTrafficExitsZero() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        _ = try ns.start(["server", "--port", "7300"])
        _ = try ns.start(["clients", "--port", "7300", "--count", "5", "--then", "hold"])
        let result = try linger(["doctor", "--netns", ns.name])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.hasPrefix("healthy: 11 TCP sockets in network namespace \(ns.name) (ESTABLISHED 10, LISTEN 1)"))
        let json = try linger(["doctor", "--netns", ns.name, "--json"]).json()
        #expect(json["status"] as? String == "healthy")
        #expect((json["findings"] as? [Any])?.isEmpty == true)
    }
}
}
