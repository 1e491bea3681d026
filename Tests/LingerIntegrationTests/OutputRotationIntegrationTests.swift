import Foundation
import Testing

/// The collector's own output rotating under a live stream: rename + SIGHUP, the shipped logrotate config
/// with the real logrotate, built-in rotation through kills, and copytruncate refused.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct OutputRotationIntegrationTests {
    /// Removed with the suite instance, pass or fail.
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-out")
    }

    private var out: String { directory.appendingPathComponent("shipped.log").path }
    private var pidFile: String { directory.appendingPathComponent("serve.pid").path }

    private func serve(_ ns: TestNamespace, _ extra: [String] = []) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7700", "--sink", "file:\(out)", "--pid-file", pidFile] + extra)
        try server.waitForStderr("listening on")
        return server
    }

    private func lines(_ range: ClosedRange<Int>) -> String { range.map { "line \($0)" }.joined(separator: "\n") + "\n" }

    /// Ships `range` from stdin as its own sender (stdin is numbered by line position per client id).
    private func ship(_ ns: TestNamespace, _ range: ClosedRange<Int>) throws {
        let sender = try ns.linger(["send", "127.0.0.1:7700", "--client-id", "rot-\(range.lowerBound)"])
        try sender.write(lines(range))
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
    }

    private func text(_ path: String) throws -> String {
        if path.hasSuffix(".gz") { return try run("/bin/zcat", [path]).stdout }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func aRenameAndSIGHUPContinueInANewFileAcrossARestart() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        var server = try serve(ns)
        try ship(ns, 1...1000)
        try FileManager.default.moveItem(atPath: out, toPath: out + ".1")
        server.signal(SIGHUP)
        try server.waitForStderr("reopened")
        try ship(ns, 1001...2000)
        #expect(server.process.isRunning, "SIGHUP does not end the server")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        server = try serve(ns)
        try ship(ns, 2001...3000)
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try text(out + ".1") == lines(1...1000))
        #expect(try text(out) == lines(1001...3000), "the lines after the SIGHUP are in the new file")
    }

    @Test func theShippedLogrotateConfigRotatesFiveTimesUnderAStream() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let logrotate = "/usr/sbin/logrotate"
        _ = try installedTool(logrotate, package: "logrotate")
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try String(contentsOf: repository.appendingPathComponent("deploy/logrotate/linger-serve"), encoding: .utf8)
        let config = directory.appendingPathComponent("logrotate.conf").path
        try shipped.replacingOccurrences(of: "/var/log/linger/shipped.log", with: out)
            .replacingOccurrences(of: "/run/linger-serve.pid", with: pidFile)
            .replacingOccurrences(of: "create 0640 root adm", with: "create 0640 root root")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let state = directory.appendingPathComponent("logrotate.state").path
        let server = try serve(ns)
        let sender = try ns.linger(["send", "127.0.0.1:7700", "--client-id", "stream"])
        var written = 0
        for round in 1...6 {
            for _ in 0..<10 {
                try sender.write(lines((written + 1)...(written + 500)))
                written += 500
                usleep(20_000)
            }
            if round <= 5 {
                let rotated = try run(logrotate, ["-f", "-s", state, config])
                #expect(rotated.status == 0, "logrotate: \(rotated.stderr)")
            }
        }
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(server.stderrText.components(separatedBy: "reopened").count - 1 == 5, "\(server.stderrText)")
        var all = ""
        for n in stride(from: 5, through: 1, by: -1) {
            let plain = "\(out).\(n)", compressed = plain + ".gz"
            all += try text(FileManager.default.fileExists(atPath: compressed) ? compressed : plain)
        }
        all += try text(out)
        #expect(all == lines(1...written), "exact across 5 rotations, with compressed files")
    }

    @Test func builtInSizeRotationStaysExactThroughKills() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let rotate = ["--rotate-size", "64KiB"]
        var server = try serve(ns, rotate)
        let sender = try ns.linger(["send", "127.0.0.1:7700", "--client-id", "sized", "--backoff-initial", "20ms", "--backoff-max", "200ms"])
        let input = lines(1...60_000)
        // In 30 chunks, so commits stay smaller than the rotation size and the file rotates many times.
        for chunk in 0..<30 {
            try sender.write(lines((chunk * 2000 + 1)...((chunk + 1) * 2000)))
            usleep(30_000)
            if chunk % 5 == 4 {
                usleep(useconds_t.random(in: 0...100_000))
                server.signal(SIGKILL)
                _ = server.waitForExit(timeout: 10)
                server = try serve(ns, rotate)
            }
        }
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 90) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        let rotated = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("shipped.log-") }.sorted()
        #expect(rotated.count >= 3, "rotated by size (\(rotated.count) files)")
        let all = try rotated.map { try text(directory.appendingPathComponent($0).path) }.joined() + text(out)
        #expect(all == input, "exact across every rotated file")
    }

    @Test func copytruncateOnTheOutputIsRefusedClearly() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        try ship(ns, 1...100)
        try FileManager.default.copyItem(atPath: out, toPath: out + ".1")
        let handle = try #require(FileHandle(forWritingAtPath: out))
        try handle.truncate(atOffset: 0)
        try handle.close()
        let sender = try ns.linger(["send", "127.0.0.1:7700", "--client-id", "after-cut", "--backoff-initial", "2s", "--backoff-max", "2s"])
        try sender.write(lines(101...200))
        #expect(server.waitForExit(timeout: 20) == 1, "the server stops")
        #expect(server.stderrText.contains("truncated outside linger") && server.stderrText.contains("copytruncate"), "\(server.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8).isEmpty, "nothing written into the cut file")
        sender.signal(SIGTERM)
        _ = sender.waitForExit(timeout: 10)
    }
}
}
