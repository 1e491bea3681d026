import Foundation
import Testing

/// Collectors in front of a real PostgreSQL, all inside a private namespace: failover under kills, the
/// database crashing, one client id on two collectors, HAProxy in front, and the errors of a bad --sink.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct PostgresIntegrationTests {
    /// Removed with the suite instance, pass or fail.
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-pg")
    }

    private func collector(_ ns: TestNamespace, _ cluster: PostgresCluster, port: Int, verbose: Bool = false) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:\(port)", "--sink", cluster.url] + (verbose ? ["--verbose"] : []))
        try server.waitForStderr("listening on")
        return server
    }

    // The senders here run with --outbox-messages 5000: commits then come in groups of at most 5,000 rows, so
    // the row count climbs in steps and each kill lands mid-run (with the default, one group can hold a whole
    // file and the count jumps from 0 to all of it).

    /// `count` lines of varied length, some with bytes a text column would mangle.
    private func writeInput(_ count: Int) throws -> URL {
        let url = directory.appendingPathComponent("in-\(count).log")
        var text = ""
        text.reserveCapacity(count * 40)
        for n in 1...count { text += "line \(n) " + String(repeating: "x", count: n % 37) + (n % 1000 == 0 ? " \u{1}\t\\ é" : "") + "\n" }
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func rowCount(_ cluster: PostgresCluster, client: String) -> Int {
        Int((try? cluster.psql("SELECT count(*) FROM linger_lines WHERE client_id = '\(client)'")) ?? "") ?? 0
    }

    /// Every line of `input` once, in order, byte for byte: count, distinct sequence numbers, and an md5 of the
    /// bodies joined by newlines against the file's.
    private func expectExactlyOnce(_ cluster: PostgresCluster, client: String, input: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let data = try Data(contentsOf: input)
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        let summary = try cluster.psql(
            """
            SELECT count(*) || ' ' || count(DISTINCT (stream, seq)) || ' ' || coalesce(max(seq), 0) || ' ' ||
                   coalesce(md5(string_agg(body, '\\x0a'::bytea ORDER BY seq)), '')
            FROM linger_lines WHERE client_id = '\(client)'
            """)
        let expectedMD5 = try run("/bin/sh", ["-c", "head -c \(data.count - 1) '\(input.path)' | md5sum | cut -d' ' -f1"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(summary == "\(lines.count) \(lines.count) \(lines.count) \(expectedMD5)", sourceLocation: sourceLocation)
    }

    /// Runs `body` with a private namespace and a PostgreSQL cluster in it, both removed afterwards.
    private func withCluster(_ body: (TestNamespace, PostgresCluster) throws -> Void) throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let cluster = try PostgresCluster(in: ns)
        defer { cluster.stop() }
        try body(ns, cluster)
    }

    /// SIGTERM, and a clean exit (0) within 30 s, for each collector.
    private func stopCleanly(_ collectors: [LingerProcess], sourceLocation: SourceLocation = #_sourceLocation) {
        for collector in collectors {
            collector.signal(SIGTERM)
            #expect(collector.waitForExit(timeout: 30) == 0, "\(collector.stderrText)", sourceLocation: sourceLocation)
        }
    }

    /// The pid of the linger process holding an established connection from a sender on `ports`.
    private func holder(_ ns: TestNamespace, of collectors: [LingerProcess]) throws -> LingerProcess? {
        try collectors.first { try ns.sockets(in: "ESTABLISHED", heldBy: $0.pid) > 0 && $0.process.isRunning }
    }

    private func waitForRows(_ cluster: PostgresCluster, client: String, atLeast rows: Int, timeout: Double = 60) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, rowCount(cluster, client: client) < rows { usleep(20_000) }
    }

    @Test func failoverBetweenTwoCollectorsUnderKillsIsExactlyOnce() throws {
        try withCluster { ns, cluster in
            let total = 300_000
            let input = try writeInput(total)
            var collectors = [try collector(ns, cluster, port: 7601), try collector(ns, cluster, port: 7602)]
            let sendArguments = ["send", "127.0.0.1:7601", "127.0.0.1:7602", "--file", input.path, "--client-id", "fleet-1", "--backoff-max", "200ms", "--outbox-messages", "5000"]
            var sender = try ns.linger(sendArguments)
            var kills = 0
            for threshold in [total / 20, total / 10, total / 7, total / 5] {
                waitForRows(cluster, client: "fleet-1", atLeast: threshold)
                guard rowCount(cluster, client: "fleet-1") < total, let victim = try holder(ns, of: collectors) else { continue }
                let index = collectors.firstIndex { $0 === victim }!
                victim.signal(SIGKILL)
                _ = victim.waitForExit(timeout: 10)
                kills += 1
                collectors[index] = try collector(ns, cluster, port: 7601 + index)
            }
            waitForRows(cluster, client: "fleet-1", atLeast: total / 4)
            let senderKilled = rowCount(cluster, client: "fleet-1") < total
            if senderKilled {
                sender.signal(SIGKILL)
                _ = sender.waitForExit(timeout: 10)
                sender = try ns.linger(sendArguments)
            }
            #expect(sender.waitForExit(timeout: 180) == 0, "\(sender.stderrText)")
            #expect(kills == 4 && senderKilled, "the run finished before every kill landed (\(kills) collector kills)")
            try expectExactlyOnce(cluster, client: "fleet-1", input: input)
            stopCleanly(collectors)
        }
    }

    @Test func aDatabaseCrashMidRunStallsAcksButKeepsTheClientAndLosesNothing() throws {
        try withCluster { ns, cluster in
            let total = 300_000
            let input = try writeInput(total)
            let server = try collector(ns, cluster, port: 7601, verbose: true)
            let sender = try ns.linger(["send", "127.0.0.1:7601", "--file", input.path, "--client-id", "crash-1", "--outbox-messages", "5000"])
            waitForRows(cluster, client: "crash-1", atLeast: total / 5)
            #expect(rowCount(cluster, client: "crash-1") < total, "the run finished before the database was restarted")
            try cluster.restart()
            #expect(sender.waitForExit(timeout: 180) == 0, "\(sender.stderrText)")
            try expectExactlyOnce(cluster, client: "crash-1", input: input)
            // The collector kept its client through the crash: one connection, no reconnect storm. (Not the
            // kernel's PassiveOpens: PostgreSQL accepts the collector's and psql's connections in this namespace.)
            let connects = server.stderrText.components(separatedBy: "connection opened").count - 1
            #expect(connects == 1, "the sender connected \(connects) times")
            #expect(server.stderrText.contains("the sink is failing"), "\(server.stderrText)")
            #expect(server.stderrText.contains("the sink recovered"), "\(server.stderrText)")
            stopCleanly([server])
        }
    }

    @Test func oneClientIDOnTwoCollectorsIsFencedInTheDatabaseAndTheLoserIsTold() throws {
        try withCluster { ns, cluster in
            let collectorA = try collector(ns, cluster, port: 7601), collectorB = try collector(ns, cluster, port: 7602)
            let input = directory.appendingPathComponent("followed.log")
            try (1...5_000).map { "first \($0)\n" }.joined().write(to: input, atomically: true, encoding: .utf8)
            // The first sender follows the file through collector A and stays connected.
            let first = try ns.linger(["send", "127.0.0.1:7601", "--file", input.path, "--follow", "--client-id", "twin"])
            waitForRows(cluster, client: "twin", atLeast: 5_000)
            // A second sender with the same id reaches collector B while A's connection is alive: split brain.
            let second = try ns.linger(["send", "127.0.0.1:7602", "--file", input.path, "--client-id", "twin"])
            #expect(second.waitForExit(timeout: 60) == 0, "\(second.stderrText)")
            // The first sender's next lines reach A with a stale epoch: refused inside the transaction.
            let more = try FileHandle(forWritingTo: input)
            try more.seekToEnd()
            try more.write(contentsOf: Data((1...3_000).map { "second \($0)\n" }.joined().utf8))
            try more.close()
            #expect(first.waitForExit(timeout: 30) != 0, "the fenced sender must stop")
            #expect(first.stderrText.contains("took over client id twin"), "\(first.stderrText)")
            #expect(rowCount(cluster, client: "twin") == 5_000, "nothing of the fenced connection may be stored")
            let third = try ns.linger(["send", "127.0.0.1:7602", "--file", input.path, "--client-id", "twin"])
            #expect(third.waitForExit(timeout: 60) == 0, "\(third.stderrText)")
            try expectExactlyOnce(cluster, client: "twin", input: input)
            #expect(try cluster.psql("SELECT epoch FROM linger_lines_clients WHERE client_id = 'twin'") == "3")
            stopCleanly([collectorA, collectorB])
            #expect(try ns.count("CLOSE_WAIT") == 0)
        }
    }

    @Test func throughHAProxyInTCPModeAKilledCollectorFailsOverExactlyOnce() throws {
        try withCluster { ns, cluster in
            // The shipped configuration, pointed at this namespace's collectors.
            let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("deploy/haproxy/haproxy.cfg")
            let config = try String(contentsOf: shipped, encoding: .utf8)
                .replacingOccurrences(of: "10.0.0.11:7070", with: "127.0.0.1:7601")
                .replacingOccurrences(of: "10.0.0.12:7070", with: "127.0.0.1:7602")
                .replacingOccurrences(of: "bind :7070", with: "bind 127.0.0.1:7600")
                .replacingOccurrences(of: "bind 127.0.0.1:8404", with: "bind 127.0.0.1:7699")
            #expect(config.contains("127.0.0.1:7601") && config.contains("127.0.0.1:7602") && config.contains("bind 127.0.0.1:7600"))
            let configURL = directory.appendingPathComponent("haproxy.cfg")
            try config.write(to: configURL, atomically: true, encoding: .utf8)
            let check = try ns.exec(["haproxy", "-c", "-f", configURL.path])
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            let pidFile = directory.appendingPathComponent("haproxy.pid").path
            let started = try runDaemonizing(ipPath, ["netns", "exec", ns.name, "haproxy", "-D", "-f", configURL.path, "-p", pidFile])
            try #require(started.status == 0, "\(started.stderr)")
            defer { if let pid = try? String(contentsOfFile: pidFile, encoding: .utf8), let value = Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(value, SIGKILL) } }
            var collectors = [try collector(ns, cluster, port: 7601), try collector(ns, cluster, port: 7602)]
            let total = 200_000
            let input = try writeInput(total)
            let sender = try ns.linger(["send", "127.0.0.1:7600", "--file", input.path, "--client-id", "via-haproxy", "--backoff-max", "300ms", "--outbox-messages", "5000"])
            waitForRows(cluster, client: "via-haproxy", atLeast: total / 6)
            let victim = try #require(try holder(ns, of: collectors), "no collector holds the proxied connection")
            #expect(rowCount(cluster, client: "via-haproxy") < total, "the run finished before the kill")
            let index = collectors.firstIndex { $0 === victim }!
            victim.signal(SIGKILL)
            _ = victim.waitForExit(timeout: 10)
            #expect(sender.waitForExit(timeout: 180) == 0, "\(sender.stderrText)")
            try expectExactlyOnce(cluster, client: "via-haproxy", input: input)
            collectors[index] = try collector(ns, cluster, port: 7601 + index)
            stopCleanly(collectors)
        }
    }

    @Test func aBadSinkIsOneLineAndExitOne() throws {
        try withCluster { ns, cluster in
            try cluster.psql("CREATE TABLE odd_lines (client_id text, stream text, seq integer, body bytea, PRIMARY KEY (client_id, stream, seq))")
            let cases: [(url: String, says: String)] = [
                (cluster.url.replacingOccurrences(of: ":5432/", with: ":5499/"), "connection refused"),
                (cluster.url.replacingOccurrences(of: ":linger@", with: ":nope@"), "password authentication failed"),
                (cluster.url.replacingOccurrences(of: "5432/postgres", with: "5432/nowhere"), "has no database nowhere"),
                (cluster.url + "?table=odd_lines", "column seq of type integer, not bigint"),
                ("postgres://u@h/d?table=Bad", "table 'Bad'"),
            ]
            for (url, says) in cases {
                let result = try ns.exec([productsDirectory.appendingPathComponent("linger").path, "serve", "--listen", "127.0.0.1:7601", "--sink", url])
                let lines = result.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.isEmpty }
                #expect(result.status == (url.hasPrefix("postgres://u@h") ? 64 : 1), "\(url): \(result.stderr)")
                #expect(lines.count == 1 && result.stderr.contains(says), "\(url): \(result.stderr)")
                #expect(!result.stderr.contains(":linger@") && !result.stderr.contains(":nope@"), "a password was printed")
            }
        }
    }
}
}
