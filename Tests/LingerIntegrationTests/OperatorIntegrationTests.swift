import Foundation
import Testing

/// The collector under an operator's hand (issue 34): SIGTERM stops it within its deadline whatever the sink
/// is doing, a sender pointed at the wrong service stops with the reason, a database out of connection slots
/// at start is waited for, `--max-connections` serves every follower in turn, and a dead collector is not
/// hammered with reconnects.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces, mounts and PostgreSQL"))
struct OperatorIntegrationTests {
    let scratch: ScratchDirectory
    var directory: String { scratch.url.path }

    init() throws {
        scratch = try ScratchDirectory(prefix: "linger-operator")
    }

    private func lines(_ prefix: String, _ range: ClosedRange<Int>) -> String { range.map { "\(prefix) \($0)" }.joined(separator: "\n") + "\n" }

    enum Failure: String, CaseIterable, CustomStringConvertible {
        case fullDisk, readOnlyRemount, stuckWrite, databaseDown
        var description: String { rawValue }
    }

    /// The sink fails (a full disk, PostgreSQL stopped) or hangs in a write (standard output into a pipe no
    /// one reads: the sink thread blocks in write(2) as on a hung NFS server), the operator sends SIGTERM: the
    /// collector is gone within `--shutdown-deadline` plus a second, and once the sink is back a new collector
    /// has every line exactly once.
    ///
    /// The read-only remount is ext4's own on an error (errors=remount-ro): `mount -o remount,ro` is refused
    /// with EBUSY while the sink holds its file open for writing.
    @Test(arguments: Failure.allCases)
    func sigtermStopsWithinTheDeadlineWhateverTheSinkDoes(_ failure: Failure) throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let disk = try ScratchFilesystem(size: failure == .fullDisk ? "1m" : "20m")
        defer { disk.remove() }
        let ext4 = failure == .readOnlyRemount ? try Ext4Filesystem() : nil
        defer { ext4?.remove() }
        let output = ext4?.path ?? disk.path
        let cluster = failure == .databaseDown ? try PostgresCluster(in: ns) : nil
        defer { cluster?.stop() }
        let sink = cluster?.url ?? (failure == .stuckWrite ? "stdout" : "file:\(output)/out.log")
        let serve = ["serve", "--listen", "127.0.0.1:7510", "--sink", sink, "--shutdown-deadline", "3s"]
        var server = try ns.linger(serve, stdoutPipe: failure == .stuckWrite)
        try server.waitForStderr("listening on")
        let pad = String(repeating: ".", count: 50)
        let input = (1...40_000).map { "line \($0) \(pad)" }.joined(separator: "\n") + "\n"  // 2.5 MB: more than the full disk
        let inputFile = directory + "/input.txt"
        try input.write(toFile: inputFile, atomically: false, encoding: .utf8)
        let spool = directory + "/spool"
        // With the read-only remount, the lines come through a pipe in two halves, so that some are stored
        // before the filesystem turns and the rest must meet it.
        let halves = failure == .readOnlyRemount
        var sender = try ns.linger(["send", "127.0.0.1:7510", "--client-id", "stopping", "--spool", spool], stdinFile: halves ? nil : inputFile)
        let cut = input.index(input.startIndex, offsetBy: input.utf8.count / 2)
        let half = input[..<cut].lastIndex(of: "\n").map { input.index(after: $0) } ?? cut
        if halves { try sender.write(String(input[..<half])) }
        switch failure {
        case .fullDisk: break
        case .readOnlyRemount:
            // Some lines stored, then the kernel turns the filesystem read-only under the open file, as ext4
            // does on an I/O error with errors=remount-ro.
            #expect(settles { ((try? FileManager.default.attributesOfItem(atPath: output + "/out.log")[.size] as? Int) ?? 0) > 0 })
            try ext4!.failIntoReadOnly()
            try sender.write(String(input[half...]))
            sender.closeStdin()
        case .stuckWrite:
            // The pipe fills (64 KiB) and the sink's write blocks for good: nothing says "failing".
            usleep(2_000_000)
        case .databaseDown:
            #expect(settles { ((try? cluster!.psql("SELECT count(*) FROM linger_lines")).flatMap(Int.init) ?? 0) > 0 })
            try cluster!.halt()
        }
        if failure != .stuckWrite { try server.waitForStderr(failure == .databaseDown ? "PostgreSQL" : "the sink is failing", timeout: 30) }
        let stopped = Date()
        server.signal(SIGTERM)
        let status = server.waitForExit(timeout: 30)
        let took = Date().timeIntervalSince(stopped)
        // A bound the operator relies on (systemd's TimeoutStopSec), not a speed: the deadline plus one second.
        #expect(took <= 4.5, "the collector took \(took) s to stop with a 3 s deadline: \(server.stderrText.suffix(1500))")
        #expect(status != nil)
        // Standard output keeps no marks: what the pipe took before it filled counts as stored, and a new server
        // cannot say where the sender stands. The stop is what this case is about.
        if failure == .stuckWrite {
            #expect(server.stderrText.contains("did not finish within --shutdown-deadline"), "\(server.stderrText.suffix(800))")
            sender.signal(SIGKILL)
            return
        }
        // The sink back: a new collector, and the sender (which kept everything unacknowledged) delivers the rest.
        switch failure {
        case .fullDisk: try disk.resize("20m")
        case .readOnlyRemount:
            // `ip netns exec` gave the sender a mount namespace of its own, which holds the filesystem too: it
            // must go before the filesystem can be checked and mounted again. Its spool keeps every line the
            // collector did not acknowledge (8 bytes of record header each), and a new sender ships them.
            #expect(settles { spooledBytes(in: spool) >= input.utf8.count + 8 * 40_000 - 40_000 }, "all of stdin is in the spool")
            sender.signal(SIGKILL)
            _ = sender.waitForExit(timeout: 10)
            try ext4!.remount()
            sender = try ns.linger(["send", "127.0.0.1:7510", "--client-id", "stopping", "--spool", spool], stdinFile: "/dev/null")
        default: try cluster!.resume()
        }
        server = try ns.linger(serve)
        try server.waitForStderr("listening on")
        #expect(sender.waitForExit(timeout: 90) == 0, "\(sender.stderrText.suffix(1500))")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0, "\(server.stderrText.suffix(1500))")
        if let cluster {
            let stored = try cluster.psql("SELECT count(*), count(DISTINCT seq), max(seq) FROM linger_lines WHERE client_id = 'stopping'")
            #expect(stored == "40000|40000|40000", "every line once in the database: \(stored)")
        } else {
            #expect(try String(contentsOfFile: output + "/out.log", encoding: .utf8) == input, "every line once, in order")
        }
    }

    /// A second SIGTERM ends a stopping collector at once, even with a sink that is still failing.
    @Test func aSecondSignalExitsAtOnce() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let disk = try ScratchFilesystem(size: "1m")
        defer { disk.remove() }
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7511", "--sink", "file:\(disk.path)/out.log", "--shutdown-deadline", "60s"])
        try server.waitForStderr("listening on")
        let inputFile = directory + "/input.txt"
        try (1...40_000).map { "line \($0) \(String(repeating: ".", count: 50))" }.joined(separator: "\n").appending("\n")
            .write(toFile: inputFile, atomically: false, encoding: .utf8)
        let sender = try ns.linger(["send", "127.0.0.1:7511", "--client-id", "twice"], stdinFile: inputFile)
        try server.waitForStderr("the sink is failing", timeout: 30)
        server.signal(SIGTERM)
        usleep(300_000)
        let second = Date()
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 10) == 1)
        #expect(Date().timeIntervalSince(second) < 2, "the second signal ends it at once (not after the 60 s deadline)")
        #expect(server.stderrText.contains("again: exiting now"), "\(server.stderrText.suffix(800))")
        sender.signal(SIGKILL)
    }

    enum Impostor: String, CaseIterable, CustomStringConvertible {
        case https, lazyHTTP, silent, closesAtOnce
        var description: String { rawValue }
    }

    /// A sender pointed at something that is no linger server stops with exit status 2 and says what answered,
    /// within the bound its --help gives (three connections, each a third of --idle-timeout at most).
    @Test(arguments: Impostor.allCases)
    func aSenderPointedAtTheWrongServiceStops(_ impostor: Impostor) throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let peer = """
            import socket, sys, threading
            mode = sys.argv[1]
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 7520)); s.listen(64)
            print("ready", flush=True); held = []
            while True:
                c, _ = s.accept()
                if mode == "closesAtOnce": c.close()
                elif mode == "silent": held.append(c)
                else:
                    def lazy(c=c):
                        data = b""
                        while b"\\r\\n\\r\\n" not in data:
                            chunk = c.recv(4096)
                            if not chunk: break
                            data += chunk
                        c.close()
                    threading.Thread(target=lazy, daemon=True).start()
            """
        var tls: [String] = []
        let server: any FixtureProcessLike
        if impostor == .https {
            let certs = directory + "/certs"
            try makeTestCertificates(in: certs)
            server = try BackgroundProcess(ns, ["openssl", "s_server", "-accept", "127.0.0.1:7520", "-cert", certs + "/server.pem", "-key", certs + "/server.key", "-www", "-quiet"])
            tls = ["--tls-ca", certs + "/ca.pem"]
        } else {
            server = try BackgroundProcess(ns, ["python3", "-c", peer, impostor.rawValue])
        }
        defer { server.stop() }
        #expect(settles { (try? ns.exec(["ss", "-Htln", "sport", "= :7520"]).stdout.isEmpty == false) ?? false })
        let started = Date()
        let sender = try ns.linger(["send", "127.0.0.1:7520", "--client-id", "lost", "--idle-timeout", "3s"] + tls)
        try sender.write("a line\n")
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 60) == 2, "\(sender.stderrText.suffix(1500))")
        #expect(Date().timeIntervalSince(started) < 30, "the documented bound")
        let said = sender.stderrText
        #expect(said.contains("no linger server") || said.contains("does not speak the linger link"), "\(said.suffix(1500))")
        if impostor == .closesAtOnce { #expect(said.contains("closed it without a word"), "\(said.suffix(800))") }
        if impostor == .silent || impostor == .lazyHTTP { #expect(said.contains("sent nothing for"), "\(said.suffix(800))") }
    }

    /// PostgreSQL has no free connection slot when the collector starts: it waits (saying so once), then
    /// serves, and nothing is lost.
    @Test func aDatabaseWithNoFreeSlotAtStartIsWaitedFor() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let cluster = try PostgresCluster(in: ns, maximumConnections: 4)
        defer { cluster.stop() }
        // Every slot taken for 8 s.
        // One holder at a time (each seen holding before the next starts), so no probe takes a slot a holder needed.
        var holders: [BackgroundProcess] = []
        defer { for holder in holders { holder.stop() } }
        for n in 1...4 {
            holders.append(try BackgroundProcess(ns, ["psql", cluster.url, "-Atqc", "SELECT pg_sleep(8)"]))
            if n < 4 {
                #expect(settles { (try? cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")) == "\(n)" })
            }
        }
        usleep(500_000)
        #expect((try? cluster.psql("SELECT 1")) == nil, "the slots are full")
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7530", "--sink", cluster.url])
        try server.waitForStderr("waiting for it", timeout: 20)
        #expect(server.stderrText.contains("too many"), "\(server.stderrText.suffix(800))")
        #expect(server.process.isRunning, "a transient refusal is waited for, not an exit")
        try server.waitForStderr("listening on", timeout: 40)
        let sender = try ns.linger(["send", "127.0.0.1:7530", "--client-id", "slots"])
        try sender.write(lines("row", 1...1000))
        sender.closeStdin()
        #expect(sender.waitForExit(timeout: 60) == 0, "\(sender.stderrText.suffix(800))")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
        #expect(try cluster.psql("SELECT count(*), count(DISTINCT seq) FROM linger_lines WHERE client_id = 'slots'") == "1000|1000")
        #expect(server.stderrText.components(separatedBy: "waiting for it").count == 2, "said once")
    }

    /// Ten followers and five slots: the collector lets them in in turn, so every follower's lines arrive.
    @Test func moreFollowersThanConnectionsAllShip() throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let out = directory + "/out.log"
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7540", "--sink", "file:\(out)", "--max-connections", "5"])
        try server.waitForStderr("listening on")
        var followers: [LingerProcess] = []
        for n in 0..<10 {
            try "".write(toFile: directory + "/\(n).log", atomically: false, encoding: .utf8)
            followers.append(try ns.linger(["send", "127.0.0.1:7540", "--file", directory + "/\(n).log", "--follow", "--client-id", "follower-\(n)"]))
        }
        var written: [String] = []
        for round in 0..<20 {
            for n in 0..<10 {
                let handle = try #require(FileHandle(forWritingAtPath: directory + "/\(n).log"))
                handle.seekToEndOfFile()
                let text = (0..<10).map { "follower \(n) round \(round) line \($0)" }
                handle.write(Data((text.joined(separator: "\n") + "\n").utf8))
                try handle.close()
                written += text
            }
            usleep(500_000)
        }
        let arrived = settles(timeout: 45) {
            ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").count >= written.count
        }
        let collected = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        let missing = Set(written).subtracting(collected)
        #expect(arrived && missing.isEmpty && collected.count == written.count,
                "\(collected.count) of \(written.count) lines; followers missing lines: \(Set(missing.map { $0.split(separator: " ")[1] }).sorted())")
        #expect(server.stderrText.contains("at --max-connections 5: turned away"), "the operator hears of it: \(server.stderrText.suffix(800))")
        for follower in followers {
            follower.signal(SIGTERM)
            #expect(follower.waitForExit(timeout: 30) == 0, "\(follower.stderrText.suffix(800))")
        }
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 30) == 0)
    }

    /// The collector dies: the sender's reconnects in the first second are a handful, counted by the kernel.
    @Test(arguments: [0, 1])
    func aDeadCollectorIsNotHammered(round: Int) throws {
        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let server = try ns.linger(["serve", "--listen", "127.0.0.1:7550", "--sink", "discard"])
        try server.waitForStderr("listening on")
        let sender = try ns.linger(["send", "127.0.0.1:7550", "--client-id", "patient"])
        try sender.write("one\n")
        #expect(settles { (try? ns.count("ESTABLISHED")) ?? 0 >= 2 })
        let before = try ns.activeOpens()
        server.signal(round == 0 ? SIGKILL : SIGTERM)
        _ = server.waitForExit(timeout: 30)
        usleep(1_000_000)
        let attempts = try ns.activeOpens() - before
        #expect(attempts <= 5, "\(attempts) connection attempts in the first second")
        sender.signal(SIGKILL)
    }
}
}

/// What a test stops: a fixture, or a plain process.
protocol FixtureProcessLike {
    func stop()
}

/// A process in a namespace, killed by ``stop()`` (or when let go).
final class BackgroundProcess: FixtureProcessLike {
    private let process = Process()

    init(_ namespace: TestNamespace, _ command: [String]) throws {
        process.executableURL = URL(fileURLWithPath: ipPath)
        process.arguments = ["netns", "exec", namespace.name] + command
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

extension TestNamespace {
    /// The kernel's count of connection attempts from this namespace (`Tcp: ActiveOpens`).
    func activeOpens() throws -> Int {
        let snmp = try exec(["cat", "/proc/net/snmp"]).stdout.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }
        let names = snmp.first?.split(separator: " ") ?? [], values = snmp.last?.split(separator: " ") ?? []
        return names.firstIndex(of: "ActiveOpens").map { Int(values[$0]) ?? -1 } ?? -1
    }
}

/// A real ext4 on a loop device, mounted with errors=remount-ro, that a test can turn read-only under open
/// files (ext4's own `trigger_fs_error`, what an I/O error does): `mount -o remount,ro` refuses while a file
/// is open for writing, so this is the only way to get the read-only remount operators meet.
final class Ext4Filesystem {
    let path: String
    private let image: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("linger-ext4-\(UUID().uuidString)").path
        image = base + ".img"
        path = base
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, 20 << 20) == 0 else {
            throw HarnessError("cannot make \(image)")
        }
        let made = try run(try installedTool("/sbin/mkfs.ext4", package: "e2fsprogs"), ["-q", "-F", image])
        guard made.status == 0 else { throw HarnessError("mkfs.ext4 failed: \(made.stderr)") }
        try mount()
    }

    private func mount() throws {
        let mounted = try run("/bin/mount", ["-o", "loop,errors=remount-ro", image, path])
        guard mounted.status == 0 else { throw HarnessError("mount -o loop failed: \(mounted.stderr)") }
    }

    /// The loop device under `path`, from /proc/mounts.
    private func device() throws -> String {
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        guard let line = mounts.split(separator: "\n").first(where: { $0.split(separator: " ").dropFirst().first.map(String.init) == path }),
            let device = line.split(separator: " ").first
        else { throw HarnessError("\(path) is not mounted") }
        return String(device.split(separator: "/").last!)
    }

    func failIntoReadOnly() throws {
        try "1".write(toFile: "/sys/fs/ext4/\(try device())/trigger_fs_error", atomically: false, encoding: .utf8)
    }

    /// Unmounts (nothing may hold a file there), clears the recorded error as an operator's fsck would (ext4
    /// otherwise mounts read-only again), and mounts again, writable.
    func remount() throws {
        let unmounted = try run("/bin/umount", [path])
        guard unmounted.status == 0 else { throw HarnessError("umount failed: \(unmounted.stderr)") }
        let checked = try run(try installedTool("/sbin/e2fsck", package: "e2fsprogs"), ["-f", "-y", image])
        guard checked.status <= 1 else { throw HarnessError("e2fsck failed (\(checked.status)): \(checked.stdout) \(checked.stderr)") }
        try mount()
    }

    func remove() {
        _ = try? run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: image)
    }

    deinit { remove() }
}
