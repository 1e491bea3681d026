import Foundation
import Testing

/// `linger watch` and `linger export` against real namespaces, a real Prometheus, and abusive clients.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root to create namespaces"))
struct WatchExportIntegrationTests {
    /// A free TCP port on 127.0.0.1 in the host namespace.
    private func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A process in the host namespace (the exporter, Prometheus), killed when the test ends.
    final class HostProcess {
        let process = Process()
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("linger-host-\(UUID().uuidString).err")
        init(_ path: String, _ arguments: [String]) throws {
            FileManager.default.createFile(atPath: errURL.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: errURL)
            try process.run()
        }
        var stderrText: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }
        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: errURL)
            return process.terminationStatus
        }
        deinit { _ = stop() }
    }

    /// A real Prometheus on a free loopback port with `config`; the caller stops it.
    private func startPrometheus(config: URL, data: URL) throws -> (HostProcess, Int) {
        let port = freePort()
        let prometheus = try HostProcess("/usr/bin/prometheus", [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(data.path)", "--web.listen-address=127.0.0.1:\(port)",
        ])
        return (prometheus, port)
    }

    private func curl(_ url: String) throws -> String {
        try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", url]).stdout
    }

    private func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return false
    }

    @Test func prometheusScrapesTheLeakingProcess() throws {
        // A missing Prometheus is a failure that names the package, not a quiet skip (scripts/test installs it).
        _ = try installedTool("/usr/bin/prometheus", package: "prometheus")
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let leaky = try ns.start(["server", "--port", "7001", "--on-eof", "hold"])
        _ = try ns.start(["clients", "--port", "7001", "--count", "40", "--then", "close"])
        try ns.waitFor("CLOSE_WAIT", atLeast: 40)
        let exporterPort = freePort()
        let exporter = try HostProcess(productsDirectory.appendingPathComponent("linger").path,
                                       ["export", "--listen", "127.0.0.1:\(exporterPort)", "--netns", ns.name])
        defer { _ = exporter.stop() }
        #expect(try waitFor(10) { try curl("http://127.0.0.1:\(exporterPort)/healthz") == "ok\n" }, "\(exporter.stderrText)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-prom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let rules = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/prometheus/linger-alerts.yml")
        let check = try run("/usr/bin/promtool", ["check", "rules", rules.path])
        #expect(check.status == 0 && check.stdout.contains("SUCCESS"), "\(check.stdout) \(check.stderr)")
        let config = directory.appendingPathComponent("prometheus.yml")
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: ['\(rules.path)']
            scrape_configs:
              - job_name: linger
                static_configs:
                  - targets: ['127.0.0.1:\(exporterPort)']
            """.write(to: config, atomically: true, encoding: .utf8)
        let (prometheus, prometheusPort) = try startPrometheus(config: config, data: directory.appendingPathComponent("data"))
        defer { _ = prometheus.stop() }
        let query = "http://127.0.0.1:\(prometheusPort)/api/v1/query?query=linger_tcp_close_wait_sockets%7Bpid%3D%22\(leaky.pid)%22%7D"
        var answer = ""
        let found = try waitFor(40) {
            answer = try curl(query)
            return answer.contains("\"process\":\"linger-fixture\"") && answer.contains("\"40\"")
        }
        #expect(found, "Prometheus never saw 40 CLOSE_WAIT for pid \(leaky.pid): \(answer.prefix(500)) \(prometheus.stderrText.suffix(500))")
        let findings = try curl("http://127.0.0.1:\(prometheusPort)/api/v1/query?query=linger_doctor_findings%7Brule%3D%22close-wait%22%2Cseverity%3D%22critical%22%7D")
        #expect(findings.contains("\"1\""), "the doctor's finding is exported: \(findings.prefix(300))")
        #expect(exporter.stop() == 0, "SIGTERM stops the exporter cleanly")
    }

    /// `export --tls-cert/--tls-key`: a real Prometheus scrapes it over HTTPS with the CA that openssl made,
    /// and plain HTTP gets no metrics.
    @Test func prometheusScrapesOverTLS() throws {
        _ = try installedTool("/usr/bin/prometheus", package: "prometheus")
        let scratch = try ScratchDirectory(prefix: "linger-prom-tls")
        let certs = scratch.url.appendingPathComponent("certs").path
        try makeTestCertificates(in: certs)
        let exporterPort = freePort()
        let exporter = try HostProcess(productsDirectory.appendingPathComponent("linger").path, [
            "export", "--listen", "127.0.0.1:\(exporterPort)", "--tls-cert", "\(certs)/server.pem", "--tls-key", "\(certs)/server.key",
        ])
        defer { _ = exporter.stop() }
        let https = { try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "--cacert", "\(certs)/ca.pem", "https://127.0.0.1:\(exporterPort)/healthz"]).stdout }
        #expect(try waitFor(10) { try https() == "ok\n" }, "\(exporter.stderrText)")
        #expect(exporter.stderrText.contains("serving metrics on https://"), "\(exporter.stderrText)")
        let plain = try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "http://127.0.0.1:\(exporterPort)/metrics"])
        #expect(plain.status != 0 || !plain.stdout.contains("linger_"), "no metrics over plain HTTP")
        let untrusted = try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "--cacert", "\(certs)/other-ca.pem", "https://127.0.0.1:\(exporterPort)/metrics"])
        #expect(untrusted.status != 0, "curl refuses a certificate of another CA")

        let config = scratch.url.appendingPathComponent("prometheus.yml")
        try """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: linger-tls
                scheme: https
                tls_config:
                  ca_file: \(certs)/ca.pem
                static_configs:
                  - targets: ['127.0.0.1:\(exporterPort)']
            """.write(to: config, atomically: true, encoding: .utf8)
        let (prometheus, prometheusPort) = try startPrometheus(config: config, data: scratch.url.appendingPathComponent("data"))
        defer { _ = prometheus.stop() }
        var answer = ""
        let scraped = try waitFor(40) {
            answer = try curl("http://127.0.0.1:\(prometheusPort)/api/v1/query?query=linger_tcp_sockets")
            return answer.contains("\"job\":\"linger-tls\"")
        }
        #expect(scraped, "Prometheus never scraped over TLS: \(answer.prefix(300)) \(prometheus.stderrText.suffix(500))")
        #expect(exporter.stop() == 0)
    }

    @Test func watchSeesALeakGrow() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let leaky = try ns.start(["server", "--port", "7001", "--on-eof", "hold"])
        let watch = try LingerProcess(namespace: ns.name, arguments: ["watch", "--plain", "--interval", "0.5", "--duration", "4"])
        for _ in 0..<5 {
            _ = try ns.start(["clients", "--port", "7001", "--count", "5", "--then", "close"])
            usleep(500_000)
        }
        #expect(watch.waitForExit(timeout: 20) == 0, "\(watch.stderrText)")
        let lines = watch.stdoutText.split(separator: "\n")
        #expect(lines.count >= 6, "one line per interval: \(lines.count)")
        #expect(lines.contains { $0.contains("CLOSE_WAIT=") && $0.contains("(+5)") }, "changes are shown")
        #expect(lines.contains { $0.contains("leaks: linger-fixture[\(leaky.pid)]") }, "a rising count is a leak:\n\(watch.stdoutText)")

        let json = try LingerProcess(namespace: ns.name, arguments: ["watch", "--json", "--interval", "0.3", "--duration", "1"])
        #expect(json.waitForExit(timeout: 20) == 0)
        for line in json.stdoutText.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect((object["counts"] as? [String: Int])?["CLOSE_WAIT"] == 25)
        }
    }

    @Test func watchStopsWhenItsNamespaceDisappears() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let watch = try linger(["watch", "--netns", ns.name, "--plain", "--interval", "0.3", "--duration", "0.3"])
        #expect(watch.status == 0)
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("linger")
        process.arguments = ["watch", "--netns", ns.name, "--plain", "--interval", "0.3"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        usleep(800_000)
        _ = try run("/usr/bin/env", ["ip", "netns", "delete", ns.name])
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.contains("is gone"), "\(message)")
    }

    @Test func badInputAndAbusiveClients() throws {
        let unknown = try linger(["watch", "--state", "sleeping"])
        #expect(unknown.status == 64 && unknown.stderr.contains("sleeping"))
        let port = freePort()
        let exporter = try HostProcess(productsDirectory.appendingPathComponent("linger").path, ["export", "--listen", "127.0.0.1:\(port)"])
        defer { _ = exporter.stop() }
        #expect(try waitFor(10) { try curl("http://127.0.0.1:\(port)/healthz") == "ok\n" })
        // Families come sorted by name (and series by labels), so two scrapes diff cleanly.
        let page = try curl("http://127.0.0.1:\(port)/metrics")
        let families = page.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] }
        #expect(families.count > 10 && families == families.sorted(), "\(families)")
        let busy = try linger(["export", "--listen", "127.0.0.1:\(port)"])
        #expect(busy.status == 1 && busy.stderr.contains("cannot listen") && busy.stderr.contains("in use"), "\(busy.stderr)")

        // A client that never finishes its request does not hold up a scrape.
        let stalled = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(stalled) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(stalled, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        _ = "GET /metrics HTTP/1.1\r\nHost: x\r\n".withCString { send(stalled, $0, strlen($0), 0) }
        let scrape = try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/metrics"])
        #expect(scrape.stdout == "200", "scrape while another client stalls")

        // An oversized request header is refused, not buffered forever.
        let huge = try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                                             "-H", "X-Big: \(String(repeating: "a", count: 100_000))", "http://127.0.0.1:\(port)/metrics"])
        #expect(huge.stdout == "400" || huge.stdout == "431" || huge.stdout == "000", "oversized header: \(huge.stdout)")
        let after = try run("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/metrics"])
        #expect(after.stdout == "200", "still serving")
        #expect(try run("/usr/bin/env", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "http://127.0.0.1:\(port)/metrics"]).stdout == "405")
    }
}
}
