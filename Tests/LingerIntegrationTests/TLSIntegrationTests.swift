import Foundation
import Testing

/// TLS on the link with real processes in a private namespace and certificates openssl makes for each suite:
/// a wiretap sees no line and no token, every refusal is final and named and leaves nothing behind, and a
/// certificate reload keeps a live connection.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct TLSIntegrationTests {
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }
    var certs: String { directory.appendingPathComponent("certs").path }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-tls")
        try makeTestCertificates(in: directory.appendingPathComponent("certs").path)
    }

    private func serve(_ ns: TestNamespace, port: Int = 7500, sink: String, _ extra: [String]) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:\(port)", "--sink", sink, "--close-deadline", "2s"] + extra)
        try server.waitForStderr("listening on")
        return server
    }

    private func tls(server name: String = "server", clientCA: Bool = true) -> [String] {
        ["--tls-cert", "\(certs)/\(name).pem", "--tls-key", "\(certs)/\(name).key"] + (clientCA ? ["--tls-client-ca", "\(certs)/ca.pem"] : [])
    }

    private func client(_ name: String) -> [String] {
        ["--tls-cert", "\(certs)/\(name).pem", "--tls-key", "\(certs)/\(name).key"]
    }

    private func lines(_ range: ClosedRange<Int>, _ word: String = "confidential") -> String {
        range.map { "\(word) line \($0)" }.joined(separator: "\n") + "\n"
    }

    @Test func aWiretapSeesNeitherALineNorTheTokenAndTheSinkHoldsEveryLineOnce() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let token = "tok-\(UUID().uuidString)"
        let tokens = directory.appendingPathComponent("tokens")
        try "\(token) web-1\n".write(to: tokens, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("out.log").path
        let server = try serve(ns, sink: "file:\(out)", tls() + ["--token-file", tokens.path])
        let wire = directory.appendingPathComponent("wire.bin").path
        let relay = try ns.start(["relay", "--port", "7501", "--to", "7500", "--record", wire])
        let input = directory.appendingPathComponent("in.log")
        try lines(1...20_000).write(to: input, atomically: true, encoding: .utf8)
        let sender = try ns.linger(["send", "127.0.0.1:7501", "--file", input.path, "--client-id", "web-1", "--token-file", tokens.path,
                                    "--tls-ca", "\(certs)/ca.pem"] + client("client-web-1"))
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        relay.stop()
        #expect(try String(contentsOfFile: out, encoding: .utf8) == lines(1...20_000), "every line, once, in order")
        let recorded = try Data(contentsOf: URL(fileURLWithPath: wire))
        #expect(recorded.count > 20_000 * 20, "the relay carried the whole run (\(recorded.count) bytes)")
        #expect(recorded.first == 0x16, "the first byte is a TLS handshake record")
        #expect(recorded.range(of: Data("confidential".utf8)) == nil, "no line in clear")
        #expect(recorded.range(of: Data(token.utf8)) == nil, "no token in clear")
        #expect(try ns.count("CLOSE_WAIT") == 0)

        // The same relay does see plaintext: without TLS the lines and the token cross it readable.
        let plainOut = directory.appendingPathComponent("plain.log").path
        let plainWire = directory.appendingPathComponent("plain.bin").path
        let plainServer = try serve(ns, port: 7600, sink: "file:\(plainOut)", ["--token-file", tokens.path])
        let plainRelay = try ns.start(["relay", "--port", "7601", "--to", "7600", "--record", plainWire])
        let plain = try ns.linger(["send", "127.0.0.1:7601", "--client-id", "web-1", "--token-file", tokens.path])
        try plain.write(lines(1...10))
        plain.closeStdin()
        #expect(plain.waitForExit(timeout: 30) == 0, "\(plain.stderrText)")
        plainServer.signal(SIGTERM)
        _ = plainServer.waitForExit(timeout: 30)
        plainRelay.stop()
        let plainRecorded = try Data(contentsOf: URL(fileURLWithPath: plainWire))
        #expect(plainRecorded.range(of: Data("confidential line 7".utf8)) != nil)
        #expect(plainRecorded.range(of: Data(token.utf8)) != nil)
    }

    /// Each case: exit status 2 within the bound, the reason in words, at most one retry (the namespace's
    /// kernel counts accepted connections), no CLOSE_WAIT, and the server's descriptors back at baseline.
    @Test func everyRefusalIsFinalNamedAndLeavesNothingBehind() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let tokens = directory.appendingPathComponent("tokens")
        try "right-token web-1\n".write(to: tokens, atomically: true, encoding: .utf8)
        let padded = directory.appendingPathComponent("padded")
        try "right-token\u{1}\u{1}\u{1}\u{1}\n".write(to: padded, atomically: true, encoding: .utf8)
        let mutual = try serve(ns, port: 7500, sink: "discard", tls())
        let expired = try serve(ns, port: 7510, sink: "discard", tls(server: "expired-server", clientCA: false))
        let named = try serve(ns, port: 7520, sink: "discard", tls(server: "named-server", clientCA: false))
        let withTokens = try serve(ns, port: 7530, sink: "discard", tls(clientCA: false) + ["--token-file", tokens.path])
        let servers = [7500: mutual, 7510: expired, 7520: named, 7530: withTokens]
        let ca = ["--tls-ca", "\(certs)/ca.pem"]
        let cases: [(name: String, port: Int, arguments: [String], says: String)] = [
            ("plaintext on a TLS port", 7500, ["--client-id", "web-1"], "accepts TLS only"),
            ("an unknown CA", 7500, ["--client-id", "web-1", "--tls-ca", "\(certs)/other-ca.pem"] + client("client-web-1"), "not signed by a trusted CA"),
            ("an expired server certificate", 7510, ["--client-id", "web-1"] + ca, "expired on"),
            ("a host name that does not match", 7520, ["--client-id", "web-1"] + ca, "does not hold 127.0.0.1"),
            ("a wrong --tls-server-name", 7520, ["--client-id", "web-1", "--tls-server-name", "other.test"] + ca, "does not hold other.test"),
            ("impersonation", 7500, ["--client-id", "web-2"] + ca + client("client-web-1"), "client id web-2 is not a name of this client's certificate"),
            ("no client certificate", 7500, ["--client-id", "web-1"] + ca, "requires a client certificate"),
            ("an expired client certificate", 7500, ["--client-id", "web-1"] + ca + client("expired-web-1"), "it has expired"),
            ("a client certificate of an unknown CA", 7500, ["--client-id", "web-1"] + ca + client("rogue-web-1"), "not signed by a CA the server trusts"),
            ("a padded token", 7530, ["--client-id", "web-1", "--token-file", padded.path] + ca, "token is not accepted"),
            ("a token used for another client id", 7530, ["--client-id", "web-2", "--token-file", tokens.path] + ca, "may not write as client id web-2"),
        ]
        let baseline = servers.mapValues(\.openDescriptors)
        for refusal in cases {
            let opensBefore = try ns.passiveOpens()
            let sender = try ns.linger(["send", "127.0.0.1:\(refusal.port)", "--backoff-initial", "200ms"] + refusal.arguments)
            try sender.write(lines(1...3))
            sender.closeStdin()
            #expect(sender.waitForExit(timeout: 15) == 2, "\(refusal.name): \(sender.stderrText)")
            #expect(sender.stderrText.contains(refusal.says), "\(refusal.name): \(sender.stderrText)")
            #expect(try ns.passiveOpens() - opensBefore <= 2, "\(refusal.name): at most one retry")
            let server = try #require(servers[refusal.port])
            #expect(settles { server.openDescriptors == baseline[refusal.port] }, "\(refusal.name): the server's fds are back to \(baseline[refusal.port]!), not \(server.openDescriptors)")
            #expect(settles { (try? ns.count("CLOSE_WAIT")) == 0 }, "\(refusal.name): no CLOSE_WAIT")
        }
        // And the right credentials still work on each server.
        let accepted: [(Int, [String])] = [
            (7500, ["--client-id", "web-1.clients"] + ca + client("client-web-1")),
            (7520, ["--client-id", "web-1", "--tls-server-name", "linger.test"] + ca),
            (7530, ["--client-id", "web-1", "--token-file", tokens.path] + ca),
        ]
        for (port, arguments) in accepted {
            let sender = try ns.linger(["send", "127.0.0.1:\(port)"] + arguments)
            try sender.write(lines(1...3))
            sender.closeStdin()
            #expect(sender.waitForExit(timeout: 15) == 0, "port \(port): \(sender.stderrText)")
        }
        for server in servers.values {
            server.signal(SIGTERM)
            #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        }
    }

    /// SIGHUP swaps in a certificate from another CA: the live sender keeps its connection and delivers
    /// everything; new connections get the new certificate.
    @Test func aCertificateReloadKeepsTheLiveConnection() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let live = directory.appendingPathComponent("live").path
        let next = directory.appendingPathComponent("next").path
        try makeTestCertificates(in: next)
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        for name in ["server.pem", "server.key"] { try FileManager.default.copyItem(atPath: "\(certs)/\(name)", toPath: "\(live)/\(name)") }
        let out = directory.appendingPathComponent("out.log").path
        let server = try serve(ns, sink: "file:\(out)", ["--tls-cert", "\(live)/server.pem", "--tls-key", "\(live)/server.key", "--verbose"])
        let input = directory.appendingPathComponent("followed.log")
        try lines(1...1000).write(to: input, atomically: true, encoding: .utf8)
        let follower = try ns.linger(["send", "127.0.0.1:7500", "--file", input.path, "--follow", "--client-id", "follower", "--tls-ca", "\(certs)/ca.pem"])
        #expect(settles(timeout: 30) { (try? String(contentsOfFile: out, encoding: .utf8)) == lines(1...1000) })
        let opensBefore = try ns.passiveOpens()

        for name in ["server.pem", "server.key"] {
            let replacement = try Data(contentsOf: URL(fileURLWithPath: "\(next)/\(name)"))
            try replacement.write(to: URL(fileURLWithPath: "\(live)/\(name)"))
        }
        server.signal(SIGHUP)
        try server.waitForStderr("reloaded the TLS certificate")
        let handle = try FileHandle(forWritingTo: input)
        handle.seekToEndOfFile()
        handle.write(Data(lines(1001...2000).utf8))
        try handle.close()
        #expect(settles(timeout: 30) { (try? String(contentsOfFile: out, encoding: .utf8)) == lines(1...2000) }, "the live connection delivers after the reload")

        let old = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "old-ca", "--tls-ca", "\(certs)/ca.pem"])
        old.closeStdin()
        #expect(old.waitForExit(timeout: 15) == 2, "a new connection gets the new certificate: \(old.stderrText)")
        let fresh = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "new-ca", "--tls-ca", "\(next)/ca.pem"])
        try fresh.write(lines(1...3, "fresh"))
        fresh.closeStdin()
        #expect(fresh.waitForExit(timeout: 15) == 0, "\(fresh.stderrText)")
        #expect(try ns.passiveOpens() - opensBefore == 2, "the follower never reconnected; only the two new senders connected")
        // A graceful close is close_notify, then the FIN, client first: the server sees no unclean shutdown, and
        // the TIME_WAIT is the follower's, not the server's. (A refused handshake above may leave one there.)
        let serverTimeWait = { (try? ns.exec(["ss", "-Htan", "state", "time-wait", "sport", "= :7500"]).stdout.split(separator: "\n").count) ?? -1 }
        let before = serverTimeWait()
        follower.signal(SIGTERM)
        #expect(follower.waitForExit(timeout: 15) == 0, "\(follower.stderrText)")
        #expect(settles { (try? ns.exec(["ss", "-Htan", "state", "time-wait", "dport", "= :7500"]).stdout.isEmpty) == false })
        #expect(serverTimeWait() == before, "no TIME_WAIT on the server's side from the follower's close")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(!server.stderrText.contains("uncleanShutdown"), "every client sent close_notify: \(server.stderrText.suffix(2000))")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }
}
}

/// Runs scripts/make-test-certs into `directory` (openssl; no key is ever committed).
func makeTestCertificates(in directory: String) throws {
    let result = try run(repositoryRoot.appendingPathComponent("scripts/make-test-certs").path, [directory])
    guard result.status == 0 else { throw HarnessError("make-test-certs failed (is openssl installed?): \(result.stderr)") }
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass: for state that settles after an
/// event (a close, a file written), not a measure of speed.
func settles(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
