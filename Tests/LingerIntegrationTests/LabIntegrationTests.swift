import Foundation
import Testing

/// Each lab scenario in its quick form: the naive variant shows the pathology, the correct one does not,
/// measured by the kernel; and nothing is left behind.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "the lab needs root to create namespaces"))
struct LabIntegrationTests {
    /// Runs a scenario with `--report`, checks its JSON, and checks its HTML report in a real browser:
    /// `lines` curves on the time chart (one per variant) and `barGroups` groups on the trial chart.
    private func runScenario(_ name: String, lines: Int = 0, barGroups: Int = 0) throws -> [String: Any] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-lab-report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try linger(["lab", "run", name, "--quick", "--json", "--report", directory.path])
        #expect(result.status == 0, "\(name): \(result.stdout.suffix(800)) \(result.stderr.suffix(400))")
        let json = try result.json()
        #expect(json["scenario"] as? String == name)
        #expect(json["verdict"] as? String == "pass")
        #expect(!((json["claim"] as? String) ?? "").isEmpty)
        #expect(try run("/usr/bin/env", ["ip", "netns", "list"]).stdout.contains("linger-lab") == false, "namespace removed")
        #expect(try run("/usr/bin/env", ["pgrep", "-f", "lab-peer"]).stdout.isEmpty, "peers stopped")
        try checkReportInBrowser(directory.appendingPathComponent("index.html").path, scenario: name,
                                 verdict: json["verdict"] as? String ?? "?", lines: lines, barGroups: barGroups)
        return json
    }

    /// The page as Chromium parsed it: the scenario's section with its verdict, every curve and bar group, and
    /// no link that leaves the report's directory.
    private func checkReportInBrowser(_ page: String, scenario: String, verdict: String, lines: Int, barGroups: Int) throws {
        let dom = try Browser.dom(of: page)
        #expect(dom.contains("<section class=\"scenario\" id=\"\(scenario)\" data-verdict=\"\(verdict)\">"), "\(scenario) section: \(dom.prefix(400))")
        #expect(dom.contains("<span class=\"verdict \(verdict)\">\(verdict)</span>"))
        #expect(dom.components(separatedBy: "<polyline class=\"series\"").count - 1 == lines, "\(scenario): one curve per variant")
        let groups = Set(dom.components(separatedBy: "data-group=\"").dropFirst().map { $0.prefix { $0 != "\"" } })
        #expect(groups.count == barGroups, "\(scenario): bar groups \(groups.sorted())")
        #expect(!dom.contains("docs/"), "no links into the repository")
        #expect(dom.components(separatedBy: "<svg").count - 1 == (lines > 0 ? 1 : 0) + (barGroups > 0 ? 1 : 0))
    }

    private func variant(_ json: [String: Any], _ name: String) throws -> [String: Any] {
        let variants = try #require(json["variants"] as? [[String: Any]])
        let found = try #require(variants.first { $0["name"] as? String == name }, "no variant \(name)")
        return try #require(found["measurements"] as? [String: Any])
    }

    @Test func closeWaitLeak() throws {
        let json = try runScenario("close-wait-leak", lines: 3)
        let naive = try variant(json, "naive"), correct = try variant(json, "correct")
        #expect((naive["closeWait"] as? Int ?? 0) >= 50, "the naive client piles up CLOSE_WAIT: \(naive)")
        #expect(naive["firstError"] as? String == "EMFILE")
        #expect(naive["doctorNamesIt"] as? Bool == true)
        #expect(correct["closeWait"] as? Int == 0 && correct["failed"] as? Int == 0)
        let server = try variant(json, "server-error-path")
        #expect(server["serverCloseWait"] as? Int == server["requestsHittingTheErrorPath"] as? Int)
    }

    @Test func lostGoodbye() throws {
        let json = try runScenario("lost-goodbye", barGroups: 12)
        let graceful = try variant(json, "graceful"), abortive = try variant(json, "abortive"), plain = try variant(json, "close")
        let trials = try #require(graceful["trials"] as? Int)
        for condition in ["prompt-reader", "reply-in-send-queue", "unread-client-data", "unread-data-and-queued-reply"] {
            #expect(graceful["\(condition).delivered"] as? Int == trials, "graceful close always delivers (\(condition))")
            #expect(graceful["\(condition).TCPAbortOnClose"] as? Int == 0)
        }
        #expect(abortive["reply-in-send-queue.delivered"] as? Int == 0, "RST discards a reply still queued at the server")
        #expect((plain["unread-client-data.TCPAbortOnClose"] as? Int ?? 0) == trials, "close() with unread data resets")
        #expect((plain["unread-data-and-queued-reply.delivered"] as? Int ?? trials) < trials)
    }

    @Test func timeWaitChurnMatchesTheCapacityModel() throws {
        let json = try runScenario("time-wait-churn", lines: 3)
        let client = try variant(json, "client-closes-first"), server = try variant(json, "server-closes-first")
        let persistent = try variant(json, "persistent")
        let measured = try #require(client["timeWaitAtClient"] as? Int), predicted = try #require(client["predicted"] as? Double)
        #expect(abs(Double(measured) - predicted) <= 0.15 * predicted, "within 15 % of rate × elapsed")
        #expect(measured > 500, "hundreds of TIME_WAIT after a few seconds at 200/s")
        #expect(client["timeWaitAtServer"] as? Int == 0, "none on the side that did not close first")
        #expect((server["timeWaitAtServer"] as? Int ?? 0) > 500 && server["timeWaitAtClient"] as? Int == 0)
        #expect((persistent["timeWait"] as? Int ?? 99) <= 2)
        // linger capacity says the same for that rate and time.
        let capacity = try linger(["capacity", "--rate", "200", "--port-range", "32768-60999", "--json"]).json()
        #expect(capacity["timeWaitSockets"] as? Double == 12_000, "the plateau a full run reaches after 60 s")
    }

    @Test func portExhaustionAndWhatLiftsIt() throws {
        let json = try runScenario("port-exhaustion", lines: 6)
        let naive = try variant(json, "one-connection-per-request")
        #expect(naive["firstError"] as? String == "EADDRNOTAVAIL")
        let firstAt = try #require(naive["firstFailureAtSeconds"] as? Double)
        let predicted = try #require(naive["predictedFirstFailureAtSeconds"] as? Double)
        #expect(abs(firstAt - predicted) <= 0.3 * predicted, "fails when 100 ports ÷ 20/s run out: \(firstAt) s")
        for lifted in ["persistent-connection", "two-destination-ports", "two-source-addresses", "tcp_tw_reuse=1"] {
            #expect(try variant(json, lifted)["failed"] as? Int == 0, "\(lifted) lifts the ceiling")
        }
        let proxy = try variant(json, "through-haproxy")
        let requests = try #require(proxy["requests"] as? Int)
        #expect(requests > 0 && (proxy["timeWaitAtProxyBackend"] as? Int ?? 0) >= requests * 9 / 10, "TIME_WAIT on the proxy's backend side")
        #expect(proxy["timeWaitAtProxyFrontend"] as? Int == 0)
    }

    @Test func timeWaitSYN() throws {
        let json = try runScenario("time-wait-syn", barGroups: 4)
        #expect(try variant(json, "newer-sequence")["kernelAnswered"] as? String == "SYN+ACK")
        #expect(try variant(json, "older-sequence")["kernelAnswered"] as? String == "ACK")
        #expect(try variant(json, "older-sequence-newer-timestamp")["kernelAnswered"] as? String == "SYN+ACK")
        #expect(try variant(json, "newer-sequence-older-timestamp")["kernelAnswered"] as? String == "ACK")
        #expect(try variant(json, "newer-sequence")["oldConnectionUsedTimestamps"] as? Bool == true)
    }

    @Test func reuseAddrRestart() throws {
        let json = try runScenario("reuseaddr-restart", barGroups: 3)
        #expect(try variant(json, "naive")["bind"] as? String == "EADDRINUSE")
        #expect(try variant(json, "correct")["bind"] as? String == "ok")
        #expect(try variant(json, "only-new-listener")["bind"] as? String == "EADDRINUSE")
    }

    @Test func finWait2() throws {
        let json = try runScenario("fin-wait-2", lines: 2)
        let orphaned = try variant(json, "orphaned"), held = try variant(json, "held-after-shutdown")
        let gone = try #require(orphaned["goneAfterSeconds"] as? Double)
        #expect(gone >= 2 && gone <= 6, "orphans go at tcp_fin_timeout (3 s): \(gone)")
        #expect(held["stillInFinWait2"] as? Int == 10 && held["withATimer"] as? Int == 0)
    }

    @Test func halfOpenPeer() throws {
        let json = try runScenario("half-open", lines: 2)
        let naive = try variant(json, "naive"), careful = try variant(json, "tcp-user-timeout")
        #expect(naive["stateAfterWindow"] as? String == "ESTABLISHED" && naive["detectedWithinWindow"] as? Bool == false, "\(naive)")
        #expect((naive["retransmissions"] as? Int ?? 0) >= 3)
        #expect((naive["doctorFoundAfterSeconds"] as? Double ?? 99) <= 10, "\(naive)")
        let detected = try #require(careful["detectedAfterSeconds"] as? Double, "\(careful)")
        #expect(detected >= 2.5 && detected <= 6, "TCP_USER_TIMEOUT 3 s: \(careful)")
        #expect(careful["error"] as? String == "ETIMEDOUT")
    }

    @Test func reportWritesMarkdownSVGAndAPageABrowserRenders() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-lab-report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try linger(["lab", "run", "fin-wait-2", "--quick", "--report", directory.path])
        #expect(result.status == 0)
        let markdown = try String(contentsOf: directory.appendingPathComponent("fin-wait-2.md"), encoding: .utf8)
        #expect(markdown.contains("# fin-wait-2: PASS") && markdown.contains("(fin-wait-2.svg)"))
        #expect(markdown.contains("**Source.** Linux net/ipv4/tcp.c"), "the claim's source travels with the report")
        let svg = try String(contentsOf: directory.appendingPathComponent("fin-wait-2.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.contains("held FIN_WAIT2"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("index.md").path))
        // The page stands alone: moved out of the report directory, it still renders everything.
        let moved = FileManager.default.temporaryDirectory.appendingPathComponent("linger-lab-moved-\(UUID().uuidString).html").path
        defer { try? FileManager.default.removeItem(atPath: moved) }
        try FileManager.default.copyItem(atPath: directory.appendingPathComponent("index.html").path, toPath: moved)
        let png = moved + ".png"
        defer { try? FileManager.default.removeItem(atPath: png) }
        try Browser.screenshot(of: moved, to: png)
        let pixels = try PNGPixels(contentsOf: png)
        #expect(pixels.width == 1000 && pixels.height == 2000)
        // Text, two coloured curves, the verdict badge, grid lines: a rendered report has ink and colours.
        #expect(pixels.inkedShare > 0.01, "the screenshot is blank: \(pixels.inkedShare)")
        #expect(pixels.distinctColors > 20, "only \(pixels.distinctColors) colours in the screenshot")
    }

    @Test func unknownScenarioIsRefused() throws {
        let result = try linger(["lab", "run", "no-such-thing"])
        #expect(result.status == 64 && result.stderr.contains("close-wait-leak"))
    }
}
}

extension Integration.LabIntegrationTests {
    /// Ctrl-C in the middle of a run: the namespace and every peer are gone afterwards.
    @Test func interruptLeavesNothingBehind() throws {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("linger")
        process.arguments = ["lab", "run", "fin-wait-2"]  // the full form lasts 14 s: plenty of time to interrupt
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, try run("/usr/bin/env", ["pgrep", "-f", "lab-peer server"]).stdout.isEmpty { usleep(50_000) }
        #expect(try run("/usr/bin/env", ["ip", "netns", "list"]).stdout.contains("linger-lab"), "the run had started")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 3, "an interrupted run is not a verdict")
        #expect(try run("/usr/bin/env", ["ip", "netns", "list"]).stdout.contains("linger-lab") == false)
        #expect(try run("/usr/bin/env", ["pgrep", "-f", "lab-peer"]).stdout.isEmpty)
    }
}
