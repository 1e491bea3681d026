import Foundation
import Testing

/// The link's unhappy paths with real processes in a private namespace: a sink that stalls, a disk that
/// fills, a reader that goes away, two senders with one client id, and files linger did not write.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces and mounts"))
struct LinkFailureIntegrationTests {
    /// Removed with the suite instance, pass or fail.
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-fail")
    }

    private func serve(_ ns: TestNamespace, sink: String, extra: [String] = [], stdoutPipe: Bool = false) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7500", "--sink", sink] + extra, stdoutPipe: stdoutPipe)
        try server.waitForStderr("listening on")
        return server
    }

    /// Sends `text` as client `id` to the server on 7500 and waits until every line was acknowledged.
    private func ship(_ ns: TestNamespace, as id: String, _ text: String) throws {
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", id])
        try sender.write(text)
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 30) == 0, "\(sender.stderrText)")
    }

    private func numberedLines(_ range: ClosedRange<Int>, width: Int = 0) -> String {
        range.map { n in
            let line = "message \(n)"
            return width > line.count ? line + String(repeating: ".", count: width - line.count) : line
        }.joined(separator: "\n") + "\n"
    }

    // MARK: - Issue: the core (a stalled sink)

    @Test func aStalledSinkKeepsOneConnectionAndLosesNothing() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns, sink: "stdout", stdoutPipe: true)
        let reader = try #require(server.stdoutPipe).fileHandleForReading
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--idle-timeout", "2s", "--client-id", "stall"])
        // 6 MB: more than the pipe (64 KiB) and the server's pending limit (4 MiB) together, so reading stops.
        let input = numberedLines(1...400_000)
        try sender.write(input)
        sender.closeStdin()
        // Nobody reads the server's stdout for 15 s: its pipe (64 KiB) fills and the sink blocks.
        var closeWaitSeen = 0
        for _ in 0..<15 {
            usleep(1_000_000)
            closeWaitSeen += try ns.count("CLOSE_WAIT")
        }
        #expect(sender.process.isRunning, "the sender waits; it has not given up or finished")
        let received = reader.readDataToEndOfFileInBackground()
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(String(decoding: received.wait(), as: UTF8.self) == input, "every line once, in order")
        #expect(try ns.passiveOpens() == 1, "exactly one connection: the sender never timed out and reconnected")
        #expect(closeWaitSeen == 0, "never a CLOSE_WAIT")
        #expect(!sender.stderrText.contains("replacing the connection"))
    }

    /// Eight senders into a stalled sink: the server holds at most `--max-pending` and a read loop per
    /// connection, not everything they send; once the sink drains, every line arrives once.
    @Test func manySendersIntoAStalledSinkHoldNoMoreThanTheBudget() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns, sink: "stdout", extra: ["--max-pending", "4MiB"], stdoutPipe: true)
        let reader = try #require(server.stdoutPipe).fileHandleForReading
        let before = try residentKiB(of: server.pid)
        // Every sender is welcomed before the sink stalls: a stalled sink also holds new clients' claims.
        let senders = try (0..<8).map { try ns.linger(["send", "127.0.0.1:7500", "--client-id", "s\($0)"]) }
        for _ in 0..<100 where try ns.count("ESTABLISHED") < 16 { usleep(50_000) }
        usleep(1_000_000)
        // 8 × 12 MiB of 4 KiB lines; the first 64 KiB fill the pipe nobody reads, and the sink stalls. Without
        // the budget, each connection held its next batch up to the pending limit (4 MiB), about 32 MiB.
        let padding = String(repeating: "x", count: 4000)
        for (number, sender) in senders.enumerated() {
            try sender.write((1...3072).map { "s\(number) \($0) \(padding)\n" }.joined())
            sender.closeStdin()
        }
        var grown = 0
        for _ in 0..<30 {
            usleep(100_000)
            grown = max(grown, try residentKiB(of: server.pid) - before)
        }
        #expect(senders.allSatisfy { $0.process.isRunning }, "the senders wait for the stalled sink")
        // The budget and one read loop (at most 1 MiB) per connection: 12 MiB; measured 6.7 MiB, and 41 MiB
        // with the budget ignored.
        #expect(grown < 16 << 10, "the server grew by \(grown) KiB while the sink was stalled")
        let received = reader.readDataToEndOfFileInBackground()
        for sender in senders { #expect(sender.waitForExit(timeout: 120) == 0, "\(sender.stderrText)") }
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        var seen: [String: Int] = [:]
        for line in String(decoding: received.wait(), as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2)
            let sender = String(fields[0])
            #expect(Int(fields[1]) == seen[sender, default: 0] + 1, "\(sender): every line once, in order")
            seen[sender, default: 0] += 1
        }
        #expect(seen == Dictionary(uniqueKeysWithValues: (0..<8).map { ("s\($0)", 3072) }))
    }

    private func residentKiB(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    // MARK: - Issue: fence one client id

    /// Two senders with one id ship the same file at once. Sizes are small enough for a debug build in the
    /// suite; `LINGER_ACCEPTANCE_FULL=1` runs the 2,000,000 lines × 20 rounds.
    @Test func twoSendersWithOneClientIDNeitherDuplicateNorFight() throws {
        let full = ProcessInfo.processInfo.environment["LINGER_ACCEPTANCE_FULL"] == "1"
        let lines = full ? 2_000_000 : 200_000, rounds = full ? 20 : 4
        let input = directory.appendingPathComponent("in.log")
        try numberedLines(1...lines).write(to: input, atomically: true, encoding: .utf8)
        let expected = try Data(contentsOf: input)
        for round in 0..<rounds {
            let ns = try TestNamespace()
            defer { ns.tearDown() }
            let out = directory.appendingPathComponent("out-\(round).log").path
            let server = try serve(ns, sink: "file:\(out)")
            let first = try ns.linger(["send", "127.0.0.1:7500", "--file", input.path, "--client-id", "twin"])
            usleep(useconds_t.random(in: 0...50_000))
            let second = try ns.linger(["send", "127.0.0.1:7500", "--file", input.path, "--client-id", "twin"])
            for sender in [first, second] {
                let status = sender.waitForExit(timeout: 300)
                #expect(status == 0 || status == 2, "round \(round): \(sender.stderrText)")
                if status == 2 { #expect(sender.stderrText.contains("another sender took over client id twin"), "\(sender.stderrText)") }
            }
            server.signal(SIGTERM)
            #expect(server.waitForExit(timeout: 30) == 0)
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == expected, "round \(round): the sink is byte-identical")
            #expect(try ns.passiveOpens() <= 3, "round \(round): no ping-pong")
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: out + ".linger-state")
        }
    }

    @Test func aSenderKilledAndRestartedAtOnceTakesOverItsOwnID() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let input = directory.appendingPathComponent("in.log")
        try numberedLines(1...200_000).write(to: input, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("out.log").path
        let server = try serve(ns, sink: "file:\(out)")
        let first = try ns.linger(["send", "127.0.0.1:7500", "--file", input.path, "--client-id", "phoenix", "--outbox-messages", "2000"])
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) ?? 0 < 100_000 {
            usleep(2_000)
        }
        first.signal(SIGKILL)
        let second = try ns.linger(["send", "127.0.0.1:7500", "--file", input.path, "--client-id", "phoenix"])
        _ = first.waitForExit(timeout: 10)
        #expect(second.waitForExit(timeout: 120) == 0, "\(second.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: input))
        #expect(try ns.passiveOpens() <= 3)
    }

    // MARK: - Issue: sink failures

    @Test func aFullDiskStallsDeliveryWithoutTearingDuplicatingOrReconnecting() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let disk = try ScratchFilesystem(size: "2m")
        defer { disk.remove() }
        let out = disk.path + "/out.log"
        let server = try serve(ns, sink: "file:\(out)")
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "full", "--idle-timeout", "2s"])
        let input = numberedLines(1...100_000, width: 59)  // 6 MB of 60-byte lines: three times the disk
        try sender.write(input)
        sender.closeStdin()
        try server.waitForStderr("the sink is failing", timeout: 30)
        usleep(3_000_000)
        #expect(sender.process.isRunning, "the sender waits while the disk is full")
        try disk.resize("50m")
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
        try server.waitForStderr("the sink recovered")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == input, "byte-identical: no torn line, no duplicate")
        #expect(try ns.passiveOpens() <= 2, "no reconnect storm while the disk was full")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    @Test func killedAtRandomWhileTheDiskFillsAndDrainsItStaysExact() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let disk = try ScratchFilesystem(size: "1m")
        defer { disk.remove() }
        let out = disk.path + "/out.log"
        var server = try serve(ns, sink: "file:\(out)")
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "chaos", "--backoff-initial", "20ms", "--backoff-max", "200ms"])
        let input = numberedLines(1...40_000, width: 59)  // 2.4 MB into 1 MiB, then room
        try sender.write(input)
        sender.closeStdin()
        for kill in 0..<6 {
            usleep(useconds_t.random(in: 200_000...700_000))
            server.signal(SIGKILL)
            _ = server.waitForExit(timeout: 10)
            if kill == 3 { try disk.resize("20m") }
            server = try serve(ns, sink: "file:\(out)")
        }
        #expect(sender.waitForExit(timeout: 90) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == input)
    }

    /// A supervisor restarts the server while the disk is full: the start-up compaction of the state log has no
    /// room, so the server keeps the log it has and starts anyway (it failed with ENOSPC before). A short log
    /// is continued without compaction anyway, so this one is made long first, as a server that could not
    /// compact while the disk was full leaves it.
    @Test func aServerRestartedOnAFullDiskStartsAndCatchesUp() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let disk = try ScratchFilesystem(size: "1m")
        defer { disk.remove() }
        let out = disk.path + "/out.log"
        var server = try serve(ns, sink: "file:\(out)")
        try ship(ns, as: "before", numberedLines(1...1000))
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let statePath = out + ".linger-state"
        let record = try #require(try String(contentsOfFile: statePath, encoding: .utf8).split(separator: "\n").last { $0.hasPrefix("c ") })
        let log = try #require(FileHandle(forWritingAtPath: statePath))
        log.seekToEndOfFile()
        log.write(Data(String(repeating: record + "\n", count: 10_001).utf8))  // the same mark, recorded again and again
        try log.close()
        // Fill every byte that is left.
        let filler = disk.path + "/filler"
        _ = try run("/bin/sh", ["-c", "cat /dev/zero > \(filler) 2>/dev/null; true"])
        server = try serve(ns, sink: "file:\(out)")
        #expect(server.stderrText.contains("uncompacted"), "\(server.stderrText)")
        let second = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "after"])
        try second.write(numberedLines(1001...2000))
        second.closeStdin()
        try server.waitForStderr("the sink is failing", timeout: 30)
        try FileManager.default.removeItem(atPath: filler)
        #expect(second.waitForExit(timeout: 60) == 0, "\(second.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == numberedLines(1...2000))
        // And the log it kept is still the truth: a restart resumes the sender exactly.
        server = try serve(ns, sink: "file:\(out)")
        let again = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "after"])
        try again.write(numberedLines(1001...2000))
        again.closeStdin()
        #expect(again.waitForExit(timeout: 30) == 0, "\(again.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == numberedLines(1...2000))
    }

    @Test func aClosedStandardOutputStopsTheServerWithAReason() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns, sink: "stdout", stdoutPipe: true)
        try server.stdoutPipe?.fileHandleForReading.close()
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "piped", "--backoff-initial", "2s", "--backoff-max", "2s"])
        try sender.write(numberedLines(1...10))
        #expect(server.waitForExit(timeout: 20) == 1, "\(server.stderrText)")
        #expect(server.stderrText.contains("standard output was closed"), "\(server.stderrText)")
        let said = server.stderrText.split(separator: "\n").filter { !$0.hasPrefix("linger: listening on") }
        #expect(said == ["linger: standard output was closed by its reader: Broken pipe"], "once, in one line: \(server.stderrText)")
        // SIGTERM stops a sender even while it waits on an open stdin, and it says what was left.
        sender.signal(SIGTERM)
        #expect(sender.waitForExit(timeout: 10) == 1)
        #expect(sender.stderrText.contains("stopped with 10 lines unacknowledged"), "\(sender.stderrText)")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    /// A server at its connection limit turns a sender away for now: the sender's warning says so (it said
    /// "closed before the session began"), it retries, and gets in once a place is free.
    @Test func aSenderTurnedAwayAtTheConnectionLimitSaysWhyAndGetsInLater() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory.appendingPathComponent("limit.log").path
        let server = try serve(ns, sink: "file:\(out)", extra: ["--max-connections", "1"])
        let first = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "first"])
        try first.write("from the first\n")
        let deadline = Date().addingTimeInterval(20)
        while (try? String(contentsOfFile: out, encoding: .utf8)) != "from the first\n" && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let second = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "second", "--backoff-initial", "50ms", "--backoff-max", "200ms"])
        try second.write("from the second\n")
        second.closeStdin()
        try second.waitForStderr("127.0.0.1:7500 turned the connection away: the server is at its connection limit")
        first.closeStdin()
        #expect(first.waitForExit(timeout: 20) == 0, "\(first.stderrText)")
        #expect(second.waitForExit(timeout: 20) == 0, "\(second.stderrText)")
        #expect(!second.stderrText.contains("closed before the session began"), "\(second.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "from the first\nfrom the second\n")
        #expect(try ns.count("CLOSE_WAIT") == 0)
    }

    /// Two servers on one output file overwrote each other's lines (10 sent, 5 in the file): the second is
    /// refused and names the first; once the first is gone (even by SIGKILL) a new one takes over.
    @Test func aSecondServerOnTheSameFileIsRefused() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory.appendingPathComponent("shared.log").path
        let first = try serve(ns, sink: "file:\(out)")
        let second = try ns.linger(["serve", "--listen", "127.0.0.1:7501", "--sink", "file:\(out)"])
        #expect(second.waitForExit(timeout: 20) == 1, "\(second.stderrText)")
        #expect(second.stderrText == "linger: \(out) is being written by another linger serve (pid \(first.pid)); give each server its own file\n",
                "\(second.stderrText)")
        try ship(ns, as: "one", numberedLines(1...5))
        first.signal(SIGKILL)
        _ = first.waitForExit(timeout: 10)
        let third = try serve(ns, sink: "file:\(out)")
        try ship(ns, as: "two", numberedLines(6...10))
        third.signal(SIGTERM)
        #expect(third.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == numberedLines(1...10))
    }

    /// SIGTERM while stdin is still open, after everything read was acknowledged: exit 0, and the note says
    /// the input was not finished, so nobody takes it for "everything was sent".
    @Test func aSenderStoppedEarlySaysTheInputWasNotFinished() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory.appendingPathComponent("early.log").path
        let server = try serve(ns, sink: "file:\(out)")
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "early"])
        try sender.write(numberedLines(1...10))
        let deadline = Date().addingTimeInterval(20)
        while (try? String(contentsOfFile: out, encoding: .utf8)) != numberedLines(1...10) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try String(contentsOfFile: out, encoding: .utf8) == numberedLines(1...10))
        sender.signal(SIGTERM)
        #expect(sender.waitForExit(timeout: 10) == 0, "\(sender.stderrText)")
        #expect(sender.stderrText.contains("stopped before the end of the input; every line read until then was acknowledged"),
                "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
    }

    // MARK: - Issue: never truncate what we did not write

    @Test func aFileLingerDidNotWriteIsLeftAloneAndCanBeAdopted() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory.appendingPathComponent("existing.log").path
        let existing = numberedLines(1...1000)
        try existing.write(toFile: out, atomically: true, encoding: .utf8)
        let refused = try ns.linger(["serve", "--listen", "127.0.0.1:7500", "--sink", "file:\(out)"])
        #expect(refused.waitForExit(timeout: 20) == 1)
        let message = refused.stderrText.split(separator: "\n")
        #expect(message.count == 1 && message[0].contains(out) && message[0].contains("\(existing.utf8.count) bytes"), "\(refused.stderrText)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == existing, "left byte-identical")

        let server = try serve(ns, sink: "file:\(out)", extra: ["--adopt-existing"])
        let sender = try ns.linger(["send", "127.0.0.1:7500", "--client-id", "adopter"])
        try sender.write("after 1\nafter 2\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 30) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == existing + "after 1\nafter 2\n")

        // The state log is lost (an operator cleaning up): the server refuses, and the lines stay.
        try FileManager.default.removeItem(atPath: out + ".linger-state")
        let again = try ns.linger(["serve", "--listen", "127.0.0.1:7500", "--sink", "file:\(out)"])
        #expect(again.waitForExit(timeout: 20) == 1)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == existing + "after 1\nafter 2\n")
    }
}
}

/// A tmpfs of a chosen size mounted on a fresh directory, to fill a disk on purpose; unmounted by `remove()`.
final class ScratchFilesystem {
    let path: String

    init(size: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("linger-disk-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
        guard mounted.status == 0 else { throw HarnessError("mount tmpfs failed: \(mounted.stderr)") }
    }

    /// Grows (or shrinks) the filesystem in place.
    func resize(_ size: String) throws {
        let result = try run("/bin/mount", ["-o", "remount,size=\(size)", path])
        guard result.status == 0 else { throw HarnessError("remount failed: \(result.stderr)") }
    }

    func remove() {
        _ = try? run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}

extension FileHandle {
    /// Reads to EOF on a thread of its own; `wait()` returns the bytes.
    func readDataToEndOfFileInBackground() -> BackgroundRead {
        let read = BackgroundRead()
        let thread = Thread { read.finish(self.readDataToEndOfFile()) }
        thread.start()
        return read
    }
}

final class BackgroundRead: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()
    func finish(_ data: Data) {
        self.data = data
        done.signal()
    }
    /// The bytes read, or nothing if EOF did not come within a minute.
    func wait() -> Data {
        guard done.wait(timeout: .now() + 60) == .success else { return Data() }
        return data
    }
}
