import Foundation
import Testing

/// Bad input gets one line naming the problem and the valid choices, a non-zero exit, and no stack trace.
extension Integration {
@Suite
struct CommandLineTests {
    private func expectCleanRefusal(_ arguments: [String], status: Int32, mentions: [String]) throws {
        let result = try linger(arguments)
        #expect(result.status == status, "\(arguments): \(result.stderr)")
        for word in mentions { #expect(result.stderr.contains(word), "\(arguments): \(result.stderr)") }
        #expect(!result.stderr.contains("Stack dump") && !result.stderr.contains("Fatal error"))
        #expect(result.stdout.isEmpty)
    }

    /// A sender that cannot connect says so at once, then at each backoff step (not at every attempt), and
    /// --give-up-after ends it with exit 1 and the reason.
    @Test(.enabled(if: canUseNamespaces)) func aSenderThatCannotConnectSaysSoAndCanGiveUp() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let sender = try ns.linger(["send", "127.0.0.1:7999", "--client-id", "lonely", "--give-up-after", "3s", "--backoff-initial", "50ms"])
        try sender.write("a line nobody will read\n")
        #expect(sender.waitForExit(timeout: 20) == 1, "\(sender.stderrText)")
        let lines = sender.stderrText.split(separator: "\n")
        let warnings = lines.filter { $0.hasPrefix("linger: warning: cannot connect to 127.0.0.1:7999: connection refused; attempt ") }
        #expect(warnings.first?.contains("attempt 1, retrying in") == true, "\(sender.stderrText)")
        #expect(warnings.count >= 2 && warnings.count <= 8, "a line per backoff step, not per attempt: \(sender.stderrText)")
        #expect(lines.last?.hasPrefix("linger: gave up after 3s without a connection (--give-up-after): cannot connect to 127.0.0.1:7999: connection refused") == true,
                "\(sender.stderrText)")
        #expect(try ns.passiveOpens() == 0)
    }

    /// A sender pointed at another service's port used to retry "the connection closed before the session
    /// began": at an HTTP server (linger's own exporter) it now stops at the first answer, exit 2, quoting
    /// it; at a server that answers nothing its warnings say so.
    @Test(.enabled(if: canUseNamespaces)) func aSenderPointedAtAnotherServiceSaysSo() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let exporter = try ns.linger(["export", "--listen", "127.0.0.1:9400"])
        try exporter.waitForStderr("9400")
        let sender = try ns.linger(["send", "127.0.0.1:9400", "--client-id", "lost", "--backoff-initial", "50ms"])
        try sender.write("a line\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 20) == 2, "\(sender.stderrText)")
        #expect(sender.stderrText == "linger: 127.0.0.1:9400 does not speak the linger link (it answered \"HTTP…\", which is no link frame); check the address and port\n",
                "\(sender.stderrText)")
        #expect(try ns.passiveOpens() == 1, "no retry")
        #expect(settles { (try? ns.count("CLOSE_WAIT")) == 0 })
        exporter.signal(SIGTERM)
        _ = exporter.waitForExit(timeout: 20)

        let silent = try ns.start(["server", "--port", "9401", "--on-eof", "close"])
        defer { silent.stop() }
        // Silence before the WELCOME is given one ping interval (a third of --idle-timeout), three times in a
        // row, and then the sender stops with exit 2 as for any other service that is not a linger server.
        let waiting = try ns.linger(["send", "127.0.0.1:9401", "--client-id", "lost", "--idle-timeout", "1s", "--give-up-after", "60s"])
        try waiting.write("a line\n")
        #expect(waiting.waitForExit(timeout: 20) == 2, "\(waiting.stderrText)")
        let silence = "127.0.0.1:9401 accepted the connection but sent nothing for 333ms"
        #expect(waiting.stderrText.contains("linger: warning: \(silence); is it a linger server?; attempt 1,"), "\(waiting.stderrText)")
        #expect(waiting.stderrText.contains("linger: \(silence), 3 times in a row, and never answered the link's HELLO: it is no linger server"),
                "\(waiting.stderrText)")
        #expect(try ns.passiveOpens() == 4, "the exporter's one and the silent server's three")
    }

    /// Started under a soft open-file limit of 64, linger raises it to the hard limit: a server at its
    /// default --max-connections (1024) under the usual soft 1024 would hit EMFILE with most of it unused.
    @Test func theSoftFileLimitIsRaisedToTheHardOne() throws {
        let binary = productsDirectory.appendingPathComponent("linger").path
        let script = "ulimit -Sn 64 && \"$0\" serve --listen 127.0.0.1:0 --sink discard 2>/dev/null & pid=$!; "
            // linger itself (not the shell before its exec) with an epoll: main raised the limit before that.
            + "for i in $(seq 100); do readlink /proc/$pid/exe | grep -q linger && ls -l /proc/$pid/fd | grep -q eventpoll && break; sleep 0.05; done; "
            + "grep 'Max open files' /proc/$pid/limits; kill $pid; wait $pid"
        let result = try run("/bin/sh", ["-c", script, binary], timeout: 20)
        let fields = result.stdout.split(whereSeparator: \.isWhitespace)
        // "Max open files  SOFT  HARD  files"
        #expect(fields.count >= 6 && fields[3] == fields[4] && fields[3] != "64", "\(result.stdout) \(result.stderr)")
    }

    /// Files that cannot be shipped are refused before connecting: with the server down, the sender used to
    /// retry the connection forever and never name the missing file.
    @Test(.enabled(if: canUseNamespaces)) func unreadableFilesAreRefusedBeforeConnecting() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-inputs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let present = directory + "/present.log"
        try "a line\n".write(toFile: present, atomically: false, encoding: .utf8)
        let cases: [(files: [String], says: String)] = [
            ([present, directory + "/missing.log"], "\(directory)/missing.log does not exist"),
            ([directory + "/*.gone"], "no file matches \(directory)/*.gone"),
            ([directory], "\(directory) is a directory"),
        ]
        for (files, says) in cases {
            let sender = try ns.linger(["send", "127.0.0.1:7999", "--client-id", "early"] + files.flatMap { ["--file", $0] })
            #expect(sender.waitForExit(timeout: 20) == 1, "\(files): \(sender.stderrText)")
            #expect(sender.stderrText.contains(says), "\(files): \(sender.stderrText)")
            #expect(!sender.stderrText.contains("cannot connect"), "checked before connecting: \(sender.stderrText)")
        }
        // Following waits for a path that does not exist yet, so only a directory is refused there.
        let follower = try ns.linger(["send", "127.0.0.1:7999", "--client-id", "early", "--follow", "--file", directory])
        #expect(follower.waitForExit(timeout: 20) == 1, "\(follower.stderrText)")
        #expect(follower.stderrText.contains("\(directory) is a directory"), "\(follower.stderrText)")
        #expect(try ns.passiveOpens() == 0)
    }

    /// `send <&-` used to wait forever (its first descriptor, an epoll, took number 0 and was read as stdin), and
    /// `serve >&-` would write its sink and notes to whatever took number 1 or 2 (an epoll): closed standard
    /// descriptors are refused, or held on /dev/null so that nothing else takes them.
    @Test func closedStandardDescriptorsAreRefusedOrHeldOnDevNull() throws {
        let binary = productsDirectory.appendingPathComponent("linger").path
        let result = try run("/bin/sh", ["-c", "exec \"$0\" send 127.0.0.1:1 --give-up-after 30s <&-", binary], timeout: 20)
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr == "linger: standard input is closed; pipe lines in, or give --file\n", "\(result.stderr)")
        // A closed stdout is refused as the sink. With stderr closed too, the refusal goes to /dev/null (no
        // socket may take descriptor 2 and receive notes), and the exit status still says it.
        let server = try run("/bin/sh", ["-c", "exec \"$0\" serve --listen 127.0.0.1:0 --sink stdout >&-", binary], timeout: 20)
        #expect(server.status == 64, "\(server.stderr)")
        #expect(server.stderr.hasPrefix("linger: standard output is closed, and the sink is stdout"), "\(server.stderr)")
        let quiet = try run("/bin/sh", ["-c", "\"$0\" send 127.0.0.1:1 2>&- <&-; echo \"exit $?\"", binary], timeout: 20)
        #expect(quiet.stdout == "exit 64\n", "\(quiet.stdout) \(quiet.stderr)")
        // A server started with stdout and stderr closed holds /dev/null there, not a socket of its own.
        let detached = Process()
        detached.executableURL = URL(fileURLWithPath: "/bin/sh")
        detached.arguments = ["-c", "exec \"$0\" serve --listen 127.0.0.1:0 --sink discard >&- 2>&-", binary]
        try detached.run()
        defer {
            detached.terminate()
            detached.waitUntilExit()
        }
        let fds = "/proc/\(detached.processIdentifier)/fd"
        var held: [String] = []
        let deadline = Date().addingTimeInterval(20)
        // Once linger (not the shell before its exec) has an epoll, descriptors 1 and 2 were settled in main.
        while Date() < deadline {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? []
            let targets = names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\($0)") }
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(detached.processIdentifier)/exe")
            if exe?.hasSuffix("/linger") == true && targets.contains("anon_inode:[eventpoll]") {
                held = ["1", "2"].map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\($0)")) ?? "closed" }
                break
            }
            usleep(20_000)
        }
        #expect(held == ["/dev/null", "/dev/null"], "descriptors 1 and 2 of the server: \(held)")
    }

    /// Conflicting or impossible values are refused up front, in one line, before any long work.
    @Test func conflictsAndBadOutputsAreRefusedBeforeWork() throws {
        try expectCleanRefusal(["lab", "run", "port-exhaustion", "--report", "/proc/nope"], status: 64, mentions: ["cannot write the report to /proc/nope"])
        let lab = try linger(["lab", "run", "port-exhaustion", "--report", "/proc/nope"])
        #expect(!lab.stderr.contains("running port-exhaustion"), "refused before the scenario started: \(lab.stderr)")
        try expectCleanRefusal(["watch", "--plain", "--json"], status: 64, mentions: ["--plain and --json"])
        try expectCleanRefusal(["export", "--leak-age=-1"], status: 64, mentions: ["--leak-age", "-1"])
        // A pid file that cannot be written stops the server before its sink creates the output file.
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("linger-pidfile-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try expectCleanRefusal(["serve", "--listen", "127.0.0.1:0", "--sink", "file:\(output)", "--pid-file", "/proc/nope/pid"],
                               status: 1, mentions: ["cannot write the pid file /proc/nope/pid"])
        #expect(!FileManager.default.fileExists(atPath: output) && !FileManager.default.fileExists(atPath: output + ".linger-state"))
    }

    /// Every usage error is one line, `linger: …`, exit 64: parse errors too (ArgumentParser's own are three
    /// or four lines with a long usage line), and negative numbers are values refused with a reason, not
    /// flags reported as a missing value.
    @Test func usageErrorsAreOneLineAndNegativeValuesAreRefusedWithAReason() throws {
        let cases: [([String], [String])] = [
            (["capacity", "--rate"], ["Missing value", "--rate"]),
            (["sockets", "--bogus"], ["--bogus"]),
            (["nosuch"], ["nosuch"]),
            (["capacity", "--rate", "-5"], ["--rate", "-5"]),
            (["send", "--give-up-after", "-1s", "127.0.0.1:1"], ["-1s", "--give-up-after", "500ms, 30s, 2m"]),
            (["serve", "--idle-timeout", "-2", "--sink", "discard"], ["-2", "--idle-timeout"]),
            (["serve", "--rotate-size", "-5", "--sink", "file:/tmp/x"], ["-5", "--rotate-size", "MiB"]),
            (["serve", "--max-connections", "-3", "--sink", "discard"], ["--max-connections", "from 1 to"]),
            (["send", "--max-line-bytes", "-5", "127.0.0.1:1"], ["--max-line-bytes", "-5"]),
            (["send", "--idle-timeout", "0s", "127.0.0.1:1"], ["--idle-timeout must be more than 0"]),
            (["send", "--backoff-initial", "0ms", "127.0.0.1:1"], ["--backoff-initial must be at least 1ms"]),
            (["send", "--outbox-bytes", "lots", "127.0.0.1:1"], ["--outbox-bytes", "lots", "MiB"]),
            (["watch", "--interval", "-1"], ["--interval"]),
            (["capacity", "--rate", "5", "--time-wait", "-1"], ["--time-wait"]),
            (["send", "--spool", "/tmp/x", "--spool-sync", "always", "127.0.0.1:1"], ["--spool-sync", "always", "append", "none"]),
        ]
        for (arguments, mentions) in cases {
            try expectCleanRefusal(arguments, status: 64, mentions: mentions)
            let stderr = try linger(arguments).stderr
            let lines = stderr.split(separator: "\n")
            #expect(lines.count == 1 && stderr.hasPrefix("linger: "), "\(arguments): one line, 'linger: …': \(stderr)")
            #expect(!stderr.contains("Usage:") && !stderr.contains("Error:"), "\(arguments): \(stderr)")
        }
        // Help still prints in full, with defaults as users type them.
        let help = try linger(["serve", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE:") && help.stdout.contains("(default: 30s)"), "\(help.stdout)")
        #expect(!help.stdout.contains("DurationArgument") && !help.stdout.contains("HostPort("))
    }

    @Test func explainOtherSystemsWithSources() throws {
        let windows = try linger(["explain", "time-wait", "--os", "windows"])
        #expect(windows.status == 0 && windows.stdout.contains("TcpTimedWaitDelay") && windows.stdout.contains("sources:"), "\(windows.stdout)")
        let json = try linger(["explain", "time-wait", "--os", "freebsd", "--json"]).json()
        #expect(json["os"] as? String == "freebsd" && (json["sources"] as? [String])?.isEmpty == false)
        try expectCleanRefusal(["explain", "time-wait", "--os", "plan9"], status: 64, mentions: ["plan9", "windows"])
    }

    @Test func procSaysItHasNoListenBacklog() throws {
        let proc = try linger(["sockets", "--source", "proc", "--state", "listen"])
        #expect(proc.status == 0)
        let hasListener = proc.stdout.split(separator: "\n").contains { $0.hasPrefix("LISTEN") }
        #expect(proc.stderr.contains("no listen backlog") == hasListener, "\(proc.stderr)")
        #expect(!(try linger(["sockets", "--state", "listen"]).stderr.contains("no listen backlog")), "netlink has it")
    }

    @Test func unknownStateListsTheValidOnes() throws {
        try expectCleanRefusal(["sockets", "--state", "half-open"], status: 64, mentions: ["half-open", "CLOSE_WAIT", "connected"])
        try expectCleanRefusal(["explain", "wat"], status: 64, mentions: ["wat", "TIME_WAIT"])
    }

    @Test func malformedPortsAndRanges() throws {
        try expectCleanRefusal(["sockets", "--local-port", "99999"], status: 64, mentions: ["99999", "1 to 65535"])
        try expectCleanRefusal(["sockets", "--remote-port", "http"], status: 64, mentions: ["http"])
        try expectCleanRefusal(["sockets", "--address", "10.0.0.0/40"], status: 64, mentions: ["10.0.0.0/40", "CIDR"])
        try expectCleanRefusal(["doctor", "--confirm", "-1"], status: 64, mentions: ["--confirm"])
    }

    @Test(.enabled(if: canUseNamespaces)) func missingNamespaceIsNamed() throws {
        // One code for every command: 3, the table could not be read (the doctor keeps 1 and 2 for findings).
        for command in [["sockets"], ["doctor"], ["watch"], ["export"], ["explain", "CLOSE_WAIT"]] {
            try expectCleanRefusal(command + ["--netns", "no-such-namespace-xyz"], status: 3, mentions: ["no-such-namespace-xyz", "does not exist"])
            let result = try linger(command + ["--netns", "no-such-namespace-xyz"])
            #expect(result.stderr.split(separator: "\n").count == 1, "\(command): one line: \(result.stderr)")
        }
        try expectCleanRefusal(["serve", "--listen", "127.0.0.1:99999"], status: 64, mentions: ["127.0.0.1:99999", "port from 0 to 65535"])
        try expectCleanRefusal(["serve", "--listen", "300.1.1.1:80", "--sink", "discard"], status: 1, mentions: ["not an address of this machine"])
    }

    @Test func explainSaysWhatTheKernelDoes() throws {
        let result = try linger(["explain", "time-wait"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("60 seconds, fixed"))
        let json = try linger(["explain", "CLOSE_WAIT", "--json"]).json()
        #expect(json["state"] as? String == "CLOSE_WAIT")
        #expect((json["timer"] as? String)?.hasPrefix("None") == true)
    }

    @Test func listingOfThisMachineParses() throws {
        let result = try linger(["sockets", "--json"])
        #expect(result.status == 0)
        let json = try result.json()
        #expect(json["sockets"] is [Any] && json["takenAt"] is String)
    }
}
}

extension Integration.CommandLineTests {
    @Test func capacityOnThisMachine() throws {
        let result = try linger(["capacity", "--rate", "1000", "--port-range", "32768-60999", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        #expect(json["timeWaitSockets"] as? Double == 28_232, "at most one per port: 60,000 cannot exist")
        #expect(json["portLimit"] as? Double == 28_232)
        #expect((json["connectFailsAfterSeconds"] as? Double).map { $0 > 28 && $0 < 29 } == true)
        #expect((json["maxNewConnectionsPerSecond"] as? Double).map { Int($0) } == 470)
        #expect((json["headroom"] as? Double).map { $0 < 1 } == true)
        let text = try linger(["capacity", "--rate", "1000", "--port-range", "32768-60999"])
        #expect(text.stdout.contains("TIME_WAIT sockets here:                  28,232   (at most"), "\(text.stdout)")
        #expect(text.stdout.contains("connect() fails from about:              28 s"), "\(text.stdout)")
        #expect(text.stdout.contains("Max new connections/s per destination:   470 "), "\(text.stdout)")
        let bad = try linger(["capacity", "--rate", "-5"])
        #expect(bad.status == 64 && bad.stderr.contains("--rate must be a positive number of requests per second, got -5.0"),
                "names the value: \(bad.stderr)")
        let absurd = try linger(["capacity", "--rate", "1e12"])
        #expect(absurd.status == 64 && absurd.stderr.contains("not a rate a host can reach"), "\(absurd.stderr)")
    }
}
