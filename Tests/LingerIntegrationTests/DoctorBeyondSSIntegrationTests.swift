import Foundation
import Testing

/// What the doctor sees that `ss` cannot: descriptors of sockets a reset took out of the table, and a peer
/// that stopped acknowledging. Real processes in private namespaces; the peer vanishes by its link going down.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct DoctorBeyondSSIntegrationTests {
    private func findings(_ result: CommandResult) throws -> [[String: Any]] {
        try #require(try result.json()["findings"] as? [[String: Any]])
    }

    @Test func resetSocketsWhoseDescriptorsAreKeptAreNamedWithTheirProcess() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let leaky = try ns.start(["server", "--port", "7001", "--on-eof", "hold"])
        _ = try ns.start(["clients", "--port", "7001", "--count", "50", "--then", "close"])
        try ns.waitFor("CLOSE_WAIT", atLeast: 50)
        try ns.exec(["ss", "-K", "state", "close-wait"])
        #expect(try ns.count("CLOSE_WAIT") == 0, "ss -K took them out of the table")
        #expect(try ns.exec(["ss", "-Htan"]).stdout.split(separator: "\n").count == 1, "ss shows only the listener now")

        let result = try linger(["doctor", "--netns", ns.name, "--json"])
        #expect(result.status >= 1, "\(result.stdout.prefix(600))")
        let finding = try #require(try findings(result).first { $0["id"] as? String == "orphaned-socket-fds" }, "\(result.stdout.prefix(600))")
        let evidence = try #require(finding["evidence"] as? [String: Any])
        #expect(evidence["pid"] as? Int == Int(leaky.pid))
        #expect(evidence["count"] as? Int == 50)
        #expect(evidence["openFileLimit"] as? Int != nil)
        let text = try linger(["doctor", "--netns", ns.name])
        #expect(text.stdout.contains("(pid \(leaky.pid)) holds 50 descriptors of TCP sockets"), "\(text.stdout.prefix(600))")

        // watch and export carry it too.
        let watch = try linger(["watch", "--netns", ns.name, "--json", "--duration", "1", "--interval", "1"])
        #expect(watch.stdout.contains("\"id\":\"orphaned-socket-fds\""), "\(watch.stdout.prefix(600))")
        let exporter = try ns.linger(["export", "--listen", "127.0.0.1:9977"])
        try exporter.waitForStderr("serving metrics")
        let metrics = try ns.exec(["curl", "-s", "--max-time", "5", "http://127.0.0.1:9977/metrics"]).stdout
        #expect(metrics.contains("linger_orphaned_socket_fds{pid=\"\(leaky.pid)\",process=\"linger-fixture\"} 50"), "\(metrics.prefix(300))")
        #expect(metrics.contains("linger_doctor_findings{rule=\"orphaned-socket-fds\",severity=\"warning\"} 1"))
        exporter.signal(SIGTERM)
        #expect(exporter.waitForExit(timeout: 10) == 0)
    }

    @Test func aPeerWhoseLinkWentDownIsFoundWithinTenSeconds() throws {
        let client = try TestNamespace()
        defer { client.tearDown() }
        let peer = try TestNamespace()
        defer { peer.tearDown() }
        try client.ip(["link", "add", "lnk0", "netns", client.name, "type", "veth", "peer", "name", "lnk1", "netns", peer.name])
        try client.ip(["-n", client.name, "addr", "add", "10.201.0.1/24", "dev", "lnk0"])
        try client.ip(["-n", peer.name, "addr", "add", "10.201.0.2/24", "dev", "lnk1"])
        try client.ip(["-n", client.name, "link", "set", "lnk0", "up"])
        try client.ip(["-n", peer.name, "link", "set", "lnk1", "up"])
        _ = try peer.start(["server", "--address", "10.201.0.2", "--port", "7002"])
        let writer = try client.start(["writer", "--address", "10.201.0.2", "--port", "7002"])
        usleep(500_000)
        let healthy = try linger(["doctor", "--netns", client.name, "--json"])
        #expect(try findings(healthy).isEmpty, "while the peer answers, nothing is wrong: \(healthy.stdout.prefix(400))")

        try client.ip(["-n", peer.name, "link", "set", "lnk1", "down"])
        let wentDown = Date()
        var last = CommandResult(status: -1, stdout: "", stderr: "")
        var found: [String: Any]?
        while found == nil && Date().timeIntervalSince(wentDown) < 10 {
            usleep(250_000)
            last = try linger(["doctor", "--netns", client.name, "--json"])
            found = try findings(last).first { $0["id"] as? String == "unreachable-peer" }
        }
        let finding = try #require(found, "no unreachable-peer finding within 10 s: \(last.stdout.prefix(600))")
        #expect(last.status >= 1)
        let evidence = try #require(finding["evidence"] as? [String: Any])
        #expect(evidence["pid"] as? Int == Int(writer.pid))
        #expect(evidence["peer"] as? String == "10.201.0.2")
        #expect((evidence["retransmits"] as? Int ?? 0) >= 3)
        #expect(finding["summary"] as? String == "linger-fixture (pid \(writer.pid)) is sending to 10.201.0.2, which acknowledges nothing (\(evidence["retransmits"] as? Int ?? 0) retransmissions)")

        let exporter = try client.linger(["export", "--listen", "127.0.0.1:9977"])
        try exporter.waitForStderr("serving metrics")
        let metrics = try client.exec(["curl", "-s", "--max-time", "5", "http://127.0.0.1:9977/metrics"]).stdout
        #expect(metrics.contains("linger_tcp_retransmitting_sockets{remote_address=\"10.201.0.2\"} 1"), "\(metrics.prefix(300))")
        #expect(metrics.contains("linger_doctor_findings{rule=\"unreachable-peer\",severity=\"warning\"} 1")
            || metrics.contains("linger_doctor_findings{rule=\"unreachable-peer\",severity=\"critical\"} 1"))
        exporter.signal(SIGTERM)
        #expect(exporter.waitForExit(timeout: 10) == 0)
    }

    /// Traffic on loopback, UNIX, UDP, netlink and packet sockets, a link client and server: neither new rule
    /// says anything. The walk sees every process on the host, whose TCP sockets are in other namespaces'
    /// tables: they must not count either.
    @Test func aBusyHealthyNamespaceRaisesNoFalseAlarm() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        _ = try ns.start(["others"])
        _ = try ns.start(["server", "--port", "7300"])
        _ = try ns.start(["clients", "--port", "7300", "--count", "20", "--then", "hold"])
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7500", "--sink", "discard"])
        try server.waitForStderr("listening on")
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "busy"])
        for round in 0..<5 {
            try sender.write((0..<2000).map { "round \(round) line \($0)\n" }.joined())
            let result = try linger(["doctor", "--netns", ns.name, "--json"])
            let ids = try findings(result).compactMap { $0["id"] as? String }
            #expect(!ids.contains("orphaned-socket-fds") && !ids.contains("unreachable-peer"), "round \(round): \(result.stdout.prefix(600))")
            #expect(result.status == 0, "round \(round): \(result.stdout.prefix(600))")
        }
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 30) == 0)
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
    }

    /// `linger sockets -i` reads the same tcp_info as `ss -i`: the values that do not move on an idle
    /// connection (cwnd, rto, bytes acknowledged) agree socket by socket.
    @Test func socketsDashIAgreesWithSSDashI() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        _ = try ns.start(["server", "--port", "7300"])
        _ = try ns.start(["clients", "--port", "7300", "--count", "4", "--then", "hold"])
        try ns.waitFor("ESTABLISHED", atLeast: 8)
        usleep(300_000)
        let ours = try linger(["sockets", "-i", "--json", "--netns", ns.name, "--state", "established"])
        let sockets = try #require(try ours.json()["sockets"] as? [[String: Any]])
        #expect(sockets.count == 8)
        #expect(sockets.allSatisfy { $0["processes"] == nil }, "without -p owners were not looked up: no processes key, not []")
        let theirs = try ns.exec(["ss", "-Htni", "state", "established"]).stdout
        // ss prints each socket on one line (-H, -n) followed by its info line.
        let lines = theirs.split(separator: "\n").map(String.init)
        func value(_ name: String, in line: String) -> Int? {
            guard let range = line.range(of: " \(name):") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        var compared = 0
        for socket in sockets {
            let local = try #require(socket["local"] as? [String: Any])
            let port = try #require(local["port"] as? Int)
            let info = try #require(socket["info"] as? [String: Any], "every ESTABLISHED socket has info")
            // With a state filter ss drops its State column: Recv-Q, Send-Q, Local, Peer.
            guard let index = lines.firstIndex(where: { !$0.hasPrefix("\t") && $0.split(separator: " ").dropFirst(2).first == "127.0.0.1:\(port)" }),
                  index + 1 < lines.count else { continue }
            let infoLine = lines[index + 1]
            #expect(value("cwnd", in: infoLine) == info["cwnd"] as? Int, "port \(port): \(infoLine)")
            #expect(value("rto", in: infoLine) == (info["rtoUs"] as? Int).map { $0 / 1000 }, "port \(port): \(infoLine)")
            #expect(value("bytes_acked", in: infoLine) ?? 0 == info["bytesAcked"] as? Int, "port \(port): ss omits zeros: \(infoLine)")
            compared += 1
        }
        #expect(compared == 8, "\(theirs)")
        let text = try linger(["sockets", "-i", "--netns", ns.name, "--state", "established"]).stdout
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("\t rtt:") }.count == 8, "\(text)")
    }

    /// A watch started after the leak began reports the real age from the kernel (tcp_info's last ACK, the
    /// FIN's arrival), not 0 s from when it first looked; the exporter says where its age came from too.
    @Test func closeWaitAgesComeFromTheKernelNotFromWhenWeFirstLooked() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let leaky = try ns.start(["server", "--port", "7001", "--on-eof", "hold"])
        _ = try ns.start(["clients", "--port", "7001", "--count", "6", "--then", "close"])
        try ns.waitFor("CLOSE_WAIT", atLeast: 6)
        let stuckSince = Date()
        sleep(3)
        let watch = try linger(["watch", "--netns", ns.name, "--json", "--duration", "1", "--interval", "1"])
        let line = try #require(watch.stdout.split(separator: "\n").first)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let process = try #require((report["closeWait"] as? [[String: Any]])?.first, "\(line)")
        #expect(process["pid"] as? Int == Int(leaky.pid))
        #expect(process["oldestAgeSource"] as? String == "kernel-last-ack")
        let age = try #require(process["oldestAgeSeconds"] as? Double)
        #expect(age >= 2.5 && age <= Date().timeIntervalSince(stuckSince) + 1, "age \(age) s for a socket stuck about 3 s")

        let exporter = try ns.linger(["export", "--listen", "127.0.0.1:9977"])
        try exporter.waitForStderr("serving metrics")
        let metrics = try ns.exec(["curl", "-s", "--max-time", "5", "http://127.0.0.1:9977/metrics"]).stdout
        let oldest = metrics.split(separator: "\n").first { $0.hasPrefix("linger_tcp_close_wait_oldest_seconds{") }
        #expect(oldest?.contains("age_source=\"kernel-last-ack\"") == true, "\(oldest ?? "")")
        #expect((oldest?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 2.5, "\(oldest ?? "")")
        exporter.signal(SIGTERM)
        #expect(exporter.waitForExit(timeout: 10) == 0)
    }
}
}
