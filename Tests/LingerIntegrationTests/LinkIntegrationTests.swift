import Foundation
import Testing

/// The link with real processes in a private namespace: exactly-once through crashes and resets, and no
/// CLOSE_WAIT or leaked fd on any closing path.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces and ss -K"))
struct LinkIntegrationTests {
    /// Removed with the suite instance, pass or fail.
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-link")
    }

    private func serve(_ ns: TestNamespace, port: Int = 7400, sink: String, extra: [String] = []) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:\(port)", "--sink", sink] + extra)
        try server.waitForStderr("listening on")
        return server
    }

    /// The process's fd count once two samples 50 ms apart agree (bounded: 40 tries).
    private func settledDescriptors(of process: LingerProcess) -> Int {
        var last = process.openDescriptors
        for _ in 0..<40 {
            usleep(50_000)
            let now = process.openDescriptors
            if now == last { return now }
            last = now
        }
        return last
    }

    private func numberedLines(_ range: ClosedRange<Int>) -> String {
        range.map { "message \($0)" }.joined(separator: "\n") + "\n"
    }

    @Test func exactlyOnceWhileTheServerIsKilledAndConnectionsAreReset() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory.appendingPathComponent("out.log").path
        var server = try serve(ns, sink: "file:\(out)")
        let sender = try ns.linger([
            "send", "127.0.0.1:7400", "--client-id", "chaos", "--backoff-initial", "20ms", "--backoff-max", "200ms",
            "--progress",
        ])
        var kills = 0, resets = 0
        for chunk in 0..<20 {
            try sender.write(numberedLines(chunk * 5000 + 1...(chunk + 1) * 5000))
            usleep(60_000)
            if chunk % 4 == 1 {
                server.signal(SIGKILL)
                _ = server.waitForExit(timeout: 10)
                kills += 1
                usleep(100_000)
                server = try serve(ns, sink: "file:\(out)")
            } else if chunk % 4 == 3 {
                let killed = try ns.exec(["ss", "-K", "dst", "127.0.0.1", "dport", "=", ":7400"])
                #expect(killed.status == 0, "\(killed.stderr)")
                resets += 1
            }
        }
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 120) == 0, "sender: \(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "server: \(server.stderrText)")
        #expect(kills == 5 && resets == 5)
        let reconnects = sender.stderrText.split(separator: "\n").last { $0.contains("reconnects") }
            .flatMap { line in line.split(separator: " ").split(separator: "reconnects").last?.first }.flatMap { Int($0) } ?? 0
        #expect(reconnects >= 5, "the sender really lost its connection: \(sender.stderrText.suffix(300))")
        let written = try String(contentsOfFile: out, encoding: .utf8)
        #expect(written == numberedLines(1...100_000), "every message exactly once, in order")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    @Test func aRestartedSenderContinuesWhereTheServerStands() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let input = directory.appendingPathComponent("in.txt")
        try numberedLines(1...100_000).write(to: input, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("out.log").path
        // fsync per batch keeps the first sender slow enough to be killed in the middle.
        let server = try serve(ns, sink: "file:\(out)")
        let first = try ns.linger(["send", "127.0.0.1:7400", "--file", input.path, "--client-id", "restart", "--outbox-messages", "200"])
        // Kill it as soon as the server holds some of its lines.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) ?? 0 == 0 {
            usleep(2_000)
        }
        first.signal(SIGKILL)
        _ = first.waitForExit(timeout: 10)
        let partial = (try? String(contentsOfFile: out, encoding: .utf8))?.split(separator: "\n").count ?? 0
        let second = try ns.linger(["send", "127.0.0.1:7400", "--file", input.path, "--client-id", "restart"])
        #expect(second.waitForExit(timeout: 120) == 0, "\(second.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == numberedLines(1...100_000))
        #expect(partial > 0 && partial < 100_000, "the first sender was stopped part-way (\(partial) lines)")
        if partial > 0 { #expect(second.stderrText.contains("were already on the server")) }
    }

    @Test func aWrongTokenIsRefusedOnceWithTheServersMessage() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let tokens = directory.appendingPathComponent("tokens")
        try "right-token\n".write(to: tokens, atomically: true, encoding: .utf8)
        let wrong = directory.appendingPathComponent("wrong")
        try "wrong-token\n".write(to: wrong, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("out.log").path
        let server = try serve(ns, sink: "file:\(out)", extra: ["--token-file", tokens.path])
        let sender = try ns.linger(["send", "127.0.0.1:7400", "--token-file", wrong.path, "--client-id", "intruder"])
        try sender.write("secret data\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 20) == 2, "exit 2 means refused")
        #expect(sender.stderrText == "linger: the server refused this client: authentication failed: the token is not accepted by this server\n",
                "one line, no log line repeating it: \(sender.stderrText)")
        #expect(try ns.passiveOpens() == 1, "one connection, no retry loop")
        #expect((try? String(contentsOfFile: out, encoding: .utf8)) ?? "" == "")
        // The right token gets in.
        let good = directory.appendingPathComponent("good")
        try "right-token\n".write(to: good, atomically: true, encoding: .utf8)
        let friend = try ns.linger(["send", "127.0.0.1:7400", "--token-file", good.path])
        try friend.write("hello\n")
        friend.closeStdin()
        #expect(friend.waitForExit(timeout: 20) == 0, "\(friend.stderrText)")
        server.signal(SIGTERM)
        _ = server.waitForExit(timeout: 30)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "hello\n")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    /// Rotating tokens without a restart: SIGHUP reads the token file again; a sender with the old token is
    /// refused, one with the new token gets in, and an empty file keeps the tokens loaded before (it does not
    /// turn authentication off).
    @Test func sighupReloadsTheTokenFile() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        // The server's token file, and one for each sender.
        let (tokens, first, second) = try (tokenFile("tokens", "first-token"), tokenFile("first", "first-token"), tokenFile("second", "second-token"))
        let out = directory.appendingPathComponent("out.log").path
        let server = try serve(ns, sink: "file:\(out)", extra: ["--token-file", tokens.path])
        func ship(_ line: String, token: URL) throws -> (status: Int32?, stderr: String) {
            let sender = try ns.linger(["send", "127.0.0.1:7400", "--token-file", token.path, "--client-id", line])
            try sender.write(line + "\n")
            sender.closeStdin()
            return (sender.waitForExit(timeout: 20), sender.stderrText)
        }
        #expect(try ship("one", token: first).status == 0)

        try "second-token\n".write(to: tokens, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForStderr("reloaded 1 token from \(tokens.path)")
        let refused = try ship("two", token: first)
        #expect(refused.status == 2 && refused.stderr.contains("the token is not accepted"), "\(refused.stderr)")
        #expect(try ship("three", token: second).status == 0)

        try "".write(to: tokens, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try server.waitForStderr("holds no token; still accepting the tokens loaded before")
        #expect(try ship("four", token: second).status == 0, "an empty file did not replace the tokens")
        #expect(try ship("five", token: first).status == 2, "nor turn authentication off")

        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "one\nthree\nfour\n")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    /// A token rotation across two collectors, half done: the one not yet given the new token refuses the
    /// sender, which then ships to the other. A token neither accepts ends the sender after one connection to
    /// each, with one line naming both.
    @Test func aCollectorThatRefusesTheTokenIsPassedOverForTheNext() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let (old, new, stranger) = try (tokenFile("old", "old-token"), tokenFile("new", "new-token"), tokenFile("stranger", "no-such-token"))
        let (staleOut, rotatedOut) = (directory.appendingPathComponent("stale.log").path, directory.appendingPathComponent("rotated.log").path)
        let stale = try serve(ns, port: 7400, sink: "file:\(staleOut)", extra: ["--token-file", old.path])
        let rotated = try serve(ns, port: 7401, sink: "file:\(rotatedOut)", extra: ["--token-file", new.path])
        let sender = try ns.linger(["send", "127.0.0.1:7400", "127.0.0.1:7401", "--token-file", new.path, "--client-id", "web-1"])
        try sender.write("after the rotation\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 20) == 0, "\(sender.stderrText)")

        let opensBefore = try ns.passiveOpens()
        let refused = try ns.linger(["send", "127.0.0.1:7400", "127.0.0.1:7401", "--token-file", stranger.path, "--client-id", "web-2"])
        try refused.write("never stored\n")
        refused.closeStdin()
        #expect(refused.waitForExit(timeout: 20) == 2, "exit 2: refused for good")
        let because = "the server refused this client: authentication failed: the token is not accepted by this server"
        let lines = refused.stderrText.split(separator: "\n")
        #expect(lines.count == 2 && lines.first?.hasPrefix("linger: warning: 127.0.0.1:7400 turned the connection away: authentication failed") == true,
                "the first refusal is a warning: \(refused.stderrText)")
        #expect(lines.last == "linger: every endpoint refused this client: 127.0.0.1:7400: \(because); 127.0.0.1:7401: \(because)",
                "\(refused.stderrText)")
        #expect(try ns.passiveOpens() - opensBefore == 2, "one connection to each, no retry loop")

        for server in [stale, rotated] {
            server.signal(SIGTERM)
            #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        }
        #expect((try? String(contentsOfFile: staleOut, encoding: .utf8)) ?? "" == "")
        #expect(try String(contentsOfFile: rotatedOut, encoding: .utf8) == "after the rotation\n")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    /// A file in the test's directory holding `token` as its one line.
    private func tokenFile(_ name: String, _ token: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try (token + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func garbageAndOversizedFramesGetAnErrorAndAGracefulClose() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns, sink: "discard")
        let descriptorsBefore = server.openDescriptors
        // An unknown frame type gets ERROR (type 8) code 11 (protocol error); a length of 4 GiB gets code 17
        // (message too large). Each is followed by a FIN, never a reset.
        for (bytes, code) in [("0000000163", "000b"), ("ffffffff03000000000000000", "0011")] {
            let probe = try ns.start(["probe", "--port", "7400", "--send", bytes.count % 2 == 0 ? bytes : bytes + "0", "--wait", "5"])
            #expect(probe.value("end") == "eof", "\(probe.readyLine)")
            let received = probe.value("received") ?? ""
            #expect(received.dropFirst(8).hasPrefix("08" + code), "an ERROR frame with code \(code): \(received)")
        }
        // The server still serves others.
        let sender = try ns.linger(["send", "127.0.0.1:7400"])
        try sender.write("still here\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 20) == 0)
        #expect(try ns.sockets(in: "CLOSE_WAIT", heldBy: server.pid) == 0)
        usleep(200_000)
        #expect(server.openDescriptors == descriptorsBefore, "no fd left behind")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
    }

    @Test func silentPeersAreClosedOnBothSides() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        // A server that accepts and never answers: the client's idle timeout replaces the connection.
        let mute = try ns.start(["server", "--port", "7401", "--on-eof", "hold"])
        let sender = try ns.linger(["send", "127.0.0.1:7401", "--idle-timeout", "500ms", "--backoff-initial", "50ms", "--backoff-max", "100ms"])
        try sender.write("lost in the void\n")
        usleep(1_200_000)
        // A count taken mid-reconnect includes the socket being opened: compare settled counts (the same twice).
        let descriptorsEarly = settledDescriptors(of: sender)
        usleep(1_500_000)
        #expect(settledDescriptors(of: sender) <= descriptorsEarly, "reconnect cycles leak no fds")
        #expect(try ns.sockets(in: "CLOSE_WAIT", heldBy: sender.pid) == 0)
        let established = try ns.sockets(in: "ESTABLISHED", heldBy: sender.pid)
        #expect(established <= 1, "old connections are closed, not piled up (\(established))")
        #expect(try ns.sockets(in: "CLOSE_WAIT", heldBy: mute.pid) >= 2, "the mute server is the one leaking, and it sees our closes")
        sender.signal(SIGTERM)
        _ = sender.waitForExit(timeout: 10)

        // A client that connects and says nothing: after its idle timeout the server sends GOAWAY, lets the
        // client close first, and closes itself at the close deadline.
        let server = try serve(ns, sink: "discard", extra: ["--idle-timeout", "500ms", "--close-deadline", "500ms"])
        _ = try ns.start(["clients", "--port", "7400", "--count", "3", "--then", "hold"])
        usleep(2_000_000)
        #expect(try ns.sockets(in: "CLOSE_WAIT", heldBy: server.pid) == 0)
        #expect(try ns.sockets(in: "ESTABLISHED", heldBy: server.pid) == 0, "idle connections closed")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
    }

    @Test func shutdownSendsGoAwayAndClientsCloseFirst() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns, sink: "discard")
        let sender = try ns.linger(["send", "127.0.0.1:7400", "--backoff-initial", "2s", "--backoff-max", "2s"])
        try sender.write("one\n")
        usleep(500_000)
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        usleep(200_000)
        let states = try ns.exec(["ss", "-Htan"]).stdout
        let timeWait = states.split(separator: "\n").filter { $0.hasPrefix("TIME-WAIT") }
        #expect(timeWait.count == 1, "\(states)")
        if let line = timeWait.first {
            let fields = line.split(separator: " ")
            #expect(fields.count >= 5 && fields[4].hasSuffix(":7400"), "TIME_WAIT is on the client side (peer is the server port): \(line)")
        }
        #expect(try ns.sockets(in: "CLOSE_WAIT", heldBy: sender.pid) == 0)
        sender.closeStdin()
        sender.signal(SIGTERM)
        _ = sender.waitForExit(timeout: 10)
    }
}
}

extension Integration.LinkIntegrationTests {
    /// `serve --verbose` logs what its help promises: each connection's opening, the client id it claimed,
    /// and its close, with the peer written as host:port (no Swift type names).
    @Test func verboseServeLogsEachConnectionWithItsClientID() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7400", "--sink", "discard", "--verbose"])
        try server.waitForStderr("listening")
        let input = directory.appendingPathComponent("one.txt")
        try "one line\n".write(to: input, atomically: true, encoding: .utf8)
        let sender = try ns.linger(["send", "127.0.0.1:7400", "--client-id", "verbose-check", "--file", input.path])
        #expect(sender.waitForExit(timeout: 30) == 0, "\(sender.stderrText)")
        try server.waitForStderr("connection closed")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let log = server.stderrText
        #expect(log.contains("connection opened") && log.contains("peer=127.0.0.1:"), "\(log)")
        #expect(log.contains("client connected") && log.contains("client=verbose-check"), "\(log)")
        let closed = log.split(separator: "\n").first { $0.contains("connection closed") } ?? ""
        #expect(closed.contains("client=verbose-check peer=127.0.0.1:"), "\(log)")
        #expect(!log.contains("[IPv4]") && !log.contains("LingerLink."), "no Swift type names: \(log)")
    }
}
