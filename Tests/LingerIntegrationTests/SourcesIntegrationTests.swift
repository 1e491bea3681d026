import Foundation
import Testing

/// `linger send` as a user shipping real logs runs it: files rotated under it (by hand and by the real
/// logrotate), replaced, holding huge lines, and pipes that cannot be read twice.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct SourcesIntegrationTests {
    /// Removed with the suite instance, pass or fail.
    let scratch: ScratchDirectory
    var directory: URL { scratch.url }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-src")
    }

    private var log: String { directory.appendingPathComponent("app.log").path }
    private var out: String { directory.appendingPathComponent("shipped.log").path }

    private func serve(_ ns: TestNamespace) throws -> LingerProcess {
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7600", "--sink", "file:\(out)"])
        try server.waitForStderr("listening on")
        return server
    }

    private func lines(_ range: ClosedRange<Int>) -> String { range.map { "line \($0)" }.joined(separator: "\n") + "\n" }

    /// Appends as a logger that reopens its file by name does: after a rename, new lines go to the new file.
    private func append(_ range: ClosedRange<Int>, to path: String? = nil) throws {
        let path = path ?? log
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(lines(range).utf8))
        try handle.close()
    }

    private func sinkLines() -> Int {
        ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").utf8.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
    }

    /// Waits (up to 60 s) until the sink holds `count` lines.
    private func waitForSink(_ count: Int, _ sender: LingerProcess) throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && sinkLines() < count { usleep(50_000) }
        guard sinkLines() >= count else { throw HarnessError("the sink holds \(sinkLines()) of \(count) lines; sender: \(sender.stderrText.suffix(500))") }
    }

    private func move(_ from: String, _ to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.moveItem(atPath: from, toPath: to)
    }

    /// logrotate's shift: PATH.n → PATH.n+1, …, and (unless copying) PATH → PATH.1.
    private func shift(live: Bool = true) throws {
        for n in stride(from: 8, through: 1, by: -1) where FileManager.default.fileExists(atPath: "\(log).\(n)") {
            try move("\(log).\(n)", "\(log).\(n + 1)")
        }
        if live { try move(log, "\(log).1") }
    }

    @Test func renameTwiceCopytruncateOnceAndARenameWhileTheSenderIsDown() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        let follow = ["send", "127.0.0.1:7600", "--file", log, "--follow", "--client-id", "rotating", "--rotate-wait", "300ms"]
        try append(1...20_000)
        var sender = try ns.linger(follow)
        try waitForSink(20_000, sender)
        try shift()                                  // rename rotation 1
        try append(20_001...40_000)
        try waitForSink(40_000, sender)
        try shift()                                  // rename rotation 2
        try append(40_001...60_000)
        try waitForSink(60_000, sender)
        // copytruncate, with the writer paused: copy, then cut the live file to nothing.
        try shift(live: false)
        try FileManager.default.copyItem(atPath: log, toPath: "\(log).1")
        let live = try #require(FileHandle(forWritingAtPath: log))
        try live.truncate(atOffset: 0)
        try live.close()
        try append(60_001...80_000)
        try waitForSink(80_000, sender)
        #expect(sender.stderrText.contains("truncated"), "\(sender.stderrText)")
        // The sender dies; the log is written, rotated and written again while it is down; a new sender
        // finds the unshipped rest of the rotated file by its content, and never re-ships the copies.
        sender.signal(SIGKILL)
        _ = sender.waitForExit(timeout: 10)
        try append(80_001...85_000)
        try shift()
        try append(85_001...100_000)
        sender = try ns.linger(follow)
        try waitForSink(100_000, sender)
        usleep(500_000)
        sender.signal(SIGTERM)
        #expect(sender.waitForExit(timeout: 20) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == lines(1...100_000), "every line once, in order")
    }

    @Test func theRealLogrotateInCreateAndCopytruncateModes() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let logrotate = "/usr/sbin/logrotate"
        _ = try installedTool(logrotate, package: "logrotate")
        let create = directory.appendingPathComponent("create.conf").path
        let copytruncate = directory.appendingPathComponent("copytruncate.conf").path
        try "\(log) {\n    create\n    rotate 5\n    missingok\n}\n".write(toFile: create, atomically: true, encoding: .utf8)
        try "\(log) {\n    copytruncate\n    rotate 5\n    missingok\n}\n".write(toFile: copytruncate, atomically: true, encoding: .utf8)
        let state = directory.appendingPathComponent("logrotate.state").path
        func rotate(_ config: String) throws {
            let result = try run(logrotate, ["-f", "-s", state, config])
            #expect(result.status == 0, "logrotate: \(result.stderr)")
        }
        let server = try serve(ns)
        try append(1...10_000)
        let sender = try ns.linger(["send", "127.0.0.1:7600", "--file", log, "--follow", "--client-id", "logrotated", "--rotate-wait", "300ms"])
        try waitForSink(10_000, sender)
        try rotate(create)
        try append(10_001...20_000)
        try waitForSink(20_000, sender)
        try rotate(create)
        try append(20_001...30_000)
        try waitForSink(30_000, sender)
        try rotate(copytruncate)                     // the writer is paused while it runs
        try append(30_001...40_000)
        try waitForSink(40_000, sender)
        usleep(500_000)
        sender.signal(SIGTERM)
        #expect(sender.waitForExit(timeout: 20) == 0, "\(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == lines(1...40_000), "every line once, in order")
        #expect(FileManager.default.fileExists(atPath: "\(log).3"), "logrotate really rotated three times")
    }

    @Test func aReplacedFileWithTheSameClientIDIsShipped() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        try append(1...100)
        let first = try ns.linger(["send", "127.0.0.1:7600", "--file", log, "--client-id", "same"])
        #expect(first.waitForExit(timeout: 30) == 0, "\(first.stderrText)")
        try FileManager.default.removeItem(atPath: log)
        try (1...50).map { "replacement \($0)" }.joined(separator: "\n").appending("\n").write(toFile: log, atomically: true, encoding: .utf8)
        let second = try ns.linger(["send", "127.0.0.1:7600", "--file", log, "--client-id", "same", "--progress"])
        #expect(second.waitForExit(timeout: 30) == 0, "\(second.stderrText)")
        #expect(!second.stderrText.contains("already on the server"), "\(second.stderrText)")
        // The same content again is recognised.
        let third = try ns.linger(["send", "127.0.0.1:7600", "--file", log, "--client-id", "same"])
        #expect(third.waitForExit(timeout: 30) == 0)
        #expect(third.stderrText.contains("the first 50 were already on the server"), "\(third.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let replacement = (1...50).map { "replacement \($0)" }.joined(separator: "\n") + "\n"
        #expect(try String(contentsOfFile: out, encoding: .utf8) == lines(1...100) + replacement)
    }

    @Test func hugeLinesArriveWholeOrCutAndNeverStartAStorm() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        let three = String(repeating: "3", count: 3 << 20), twenty = String(repeating: "2", count: 20 << 20)
        try ["before", three, "between", twenty, "after"].joined(separator: "\n").appending("\n").write(toFile: log, atomically: true, encoding: .utf8)
        let sender = try ns.linger(["send", "127.0.0.1:7600", "--file", log, "--client-id", "huge"])
        #expect(sender.waitForExit(timeout: 120) == 0, "\(sender.stderrText.prefix(500))")
        #expect(sender.stderrText.contains("line 4 has 20971520 bytes; sent cut to 16777216"), "\(sender.stderrText.prefix(500))")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let shipped = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(shipped.count == 6)
        #expect(shipped[0] == "before" && shipped[2] == "between" && shipped[4] == "after")
        #expect(shipped[1].utf8.count == 3 << 20, "the 3 MiB line whole")
        #expect(shipped[3].utf8.count == 16 << 20, "the 20 MiB line cut to 16 MiB")
        #expect(try ns.passiveOpens() <= 2, "no reconnect storm")
    }

    /// A glob of more files than the sender may open at once (600 under a limit of 256): all of them were
    /// opened together, and EMFILE ended the sender with a few shipped. They are now read a few dozen at a time.
    @Test func aGlobOfMoreFilesThanTheDescriptorLimitShipsThemAll() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let logs = directory.appendingPathComponent("many").path
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: false)
        for i in 1...600 { try "file \(i)\n".write(toFile: "\(logs)/\(i).log", atomically: false, encoding: .utf8) }
        let server = try serve(ns)
        let binary = productsDirectory.appendingPathComponent("linger").path
        let sender = try ns.exec(["/bin/sh", "-c", "ulimit -n 256 && exec \"$0\" send 127.0.0.1:7600 --file '\(logs)/*.log' --client-id many", binary])
        #expect(sender.status == 0, "\(sender.stderr)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let shipped = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(Set(shipped) == Set((1...600).map { "file \($0)" }) && shipped.count == 600)
    }

    @Test func aSpoolKeepsPipedLinesThroughAKillWhileTheServerIsDown() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let spool = directory.appendingPathComponent("spool").path
        let input = lines(1...100_000)
        let first = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "piped", "--spool", spool, "--backoff-max", "200ms"])
        try first.write(input)
        // Every line is in the spool (8 bytes of record header each) before the kill; no server yet.
        let expected = input.utf8.count - 100_000 + 8 * 100_000
        let deadline = Date().addingTimeInterval(60)
        func spooled() -> Int { spooledBytes(in: spool) }
        while Date() < deadline && spooled() < expected { usleep(20_000) }
        #expect(spooled() == expected)
        // A second sender on the same spool is refused and touches nothing (it would have cut the first's
        // append in progress as a torn tail).
        let intruder = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "other", "--spool", spool])
        intruder.closeStdin()
        #expect(intruder.waitForExit(timeout: 20) == 1, "\(intruder.stderrText)")
        #expect(intruder.stderrText.contains("the spool \(spool) is in use by another sender (pid \(first.pid))"), "\(intruder.stderrText)")
        #expect(spooled() == expected)
        // SIGKILL lets go of the spool: the kernel drops the lock with the process.
        first.signal(SIGKILL)
        _ = first.waitForExit(timeout: 10)
        let server = try serve(ns)
        let second = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "piped", "--spool", spool])
        second.closeStdin()
        #expect(second.waitForExit(timeout: 60) == 0, "\(second.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == input, "every line once, in order")
        #expect(spooled() == 0, "acknowledged lines leave the spool")
    }

    /// More input than the spool may hold: reading waits for acknowledgements to make room, and the sender,
    /// idle once everything in the spool is sent, must still release what was acknowledged (it did not, once:
    /// both waited for each other).
    @Test func aSpoolSmallerThanTheInputDrainsAsItGoes() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        let input = lines(1...200_000)  // 2.3 MB through a 1 MiB spool
        let inputFile = directory.appendingPathComponent("small-input.txt").path
        try input.write(toFile: inputFile, atomically: false, encoding: .utf8)
        // Stdin from a file: a sender that stops reading fails this test by its deadline, not by hanging it.
        let sender = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "small", "--spool", directory.appendingPathComponent("small").path,
                                    "--spool-max-bytes", "1048576"], stdinFile: inputFile)
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText)")
        #expect(sender.stderrText.contains("is full"), "the spool did fill: \(sender.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == input, "every line once, in order")
    }

    @Test func aGlobShipsEveryMatchingFileAndFollowsAPathThatAppearsLaterAndIsRecreated() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        let a = directory.appendingPathComponent("a.log").path, b = directory.appendingPathComponent("b.log").path
        try append(1...1000, to: a)
        try append(1001...2000, to: b)
        let glob = try ns.linger(["send", "127.0.0.1:7600", "--file", directory.appendingPathComponent("*.log").path, "--client-id", "globbed"])
        #expect(glob.waitForExit(timeout: 60) == 0, "\(glob.stderrText)")
        let shipped = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(shipped.sorted() == (1...2000).map { "line \($0)" }.sorted(), "both files, each line once")
        // A followed path that does not exist yet, then is deleted and created again.
        let later = directory.appendingPathComponent("later.txt").path
        let follower = try ns.linger(["send", "127.0.0.1:7600", "--file", later, "--follow", "--client-id", "later", "--rotate-wait", "300ms"])
        usleep(500_000)
        try append(3001...3500, to: later)
        try waitForSink(2500, follower)
        try FileManager.default.removeItem(atPath: later)
        usleep(300_000)
        try append(3501...4000, to: later)
        try waitForSink(3000, follower)
        usleep(300_000)
        follower.signal(SIGTERM)
        #expect(follower.waitForExit(timeout: 20) == 0, "\(follower.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let all = try String(contentsOfFile: out, encoding: .utf8)
        #expect(all.hasSuffix(lines(3001...4000)), "the recreated file's lines follow the deleted one's, once each")
    }

    @Test func aSpoolStaysExactWhenTheSenderIsKilledAtRandom() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try serve(ns)
        let spool = directory.appendingPathComponent("spool").path
        var expected = ""
        for round in 0..<5 {
            let chunk = lines((round * 20_000 + 1)...((round + 1) * 20_000))
            expected += chunk
            // Both fsync policies: a SIGKILL leaves the page cache, so `none` must be just as exact here.
            let sync = round.isMultiple(of: 2) ? "append" : "none"
            let sender = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "killed", "--spool", spool, "--spool-sync", sync])
            try sender.write(chunk)
            // Each chunk is fully in the spool before the kill (what a pipe handed over is the sender's to keep).
            // Counted by the records' sequence, not the segments' sizes: an earlier round's records may still
            // be there, waiting for their acknowledgement.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if spooledThrough(spool) >= (round + 1) * 20_000 || sinkLength() >= expected.utf8.count { break }
                usleep(5_000)
            }
            usleep(useconds_t.random(in: 0...200_000))
            sender.signal(SIGKILL)
            _ = sender.waitForExit(timeout: 10)
        }
        let drain = try ns.linger(["send", "127.0.0.1:7600", "--client-id", "killed", "--spool", spool])
        drain.closeStdin()
        #expect(drain.waitForExit(timeout: 60) == 0, "\(drain.stderrText)")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        let shipped = try String(contentsOfFile: out, encoding: .utf8)
        let got = shipped.split(separator: "\n"), want = expected.split(separator: "\n")
        let firstDifference = (0..<min(got.count, want.count)).first { got[$0] != want[$0] } ?? min(got.count, want.count)
        #expect(shipped == expected, "every line once, in order, through 5 kills under both --spool-sync policies: \(got.count) lines of \(want.count), first difference at line \(firstDifference + 1) (\(got.dropFirst(firstDifference).first ?? "end") for \(want.dropFirst(firstDifference).first ?? "end"))")
    }

    /// The sequence of the last whole record in a spool directory (its segments are named by their first
    /// sequence, and hold `u32 length | u32 checksum | bytes` records), 0 when it holds none.
    private func spooledThrough(_ spool: String) -> Int {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".seg") }.sorted()
        guard let last = names.last, let first = Int(last.dropLast(4)),
              let bytes = FileManager.default.contents(atPath: spool + "/" + last) else { return 0 }
        var offset = 0, records = 0
        while offset + 8 <= bytes.count {
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            guard offset + 8 + length <= bytes.count else { break }
            offset += 8 + length
            records += 1
        }
        return first + records - 1
    }

    private func sinkLength() -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) ?? 0
    }
}
}
