import Foundation
import Testing

/// One log layout as a user has it, for `linger send`: a namespace with a collector (`serve --sink file:`),
/// a directory of logs, writers and rotations, senders started and killed, and at the end the one check
/// that matters: the collector holds every line written exactly once, whole, and in order within each file.
final class LogLayoutScene {
    let namespace: TestNamespace
    let scratch: ScratchDirectory
    var directory: String { scratch.url.path }
    var out: String { directory + "/collected/out.log" }
    private(set) var server: LingerProcess?
    /// Every line written, in the order written, per generation (a file's content from its creation).
    private(set) var written: [String: [String]] = [:]
    private var senders: [LingerProcess] = []

    init(_ name: String) throws {
        namespace = try TestNamespace()
        scratch = try ScratchDirectory(prefix: "linger-layout-\(name)")
        try FileManager.default.createDirectory(atPath: directory + "/collected", withIntermediateDirectories: true)
        try startServer()
    }

    deinit {
        for sender in senders { sender.signal(SIGKILL) }
        server?.signal(SIGKILL)
        namespace.tearDown()
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func startServer() throws {
        let server = try namespace.linger(["serve", "--listen", "127.0.0.1:7600", "--sink", "file:\(out)"])
        try server.waitForStderr("listening on")
        self.server = server
    }

    func stopServer(signal: Int32 = SIGTERM) {
        server?.signal(signal)
        _ = server?.waitForExit(timeout: 30)
        server = nil
    }

    /// `linger send` at the collector, with `arguments` after the address.
    @discardableResult
    func send(_ arguments: [String]) throws -> LingerProcess {
        let sender = try namespace.linger(["send", "127.0.0.1:7600"] + arguments)
        senders.append(sender)
        return sender
    }

    /// Runs a one-shot sender to its end; its exit status must be 0.
    func sendOnce(_ arguments: [String], timeout: Double = 120) throws {
        let sender = try send(arguments)
        let status = sender.waitForExit(timeout: timeout)
        #expect(status == 0, "send \(arguments) exited \(String(describing: status)): \(sender.stderrText.suffix(1500))")
    }

    /// Stops a follower as an operator would; it must exit 0.
    func stop(_ sender: LingerProcess) {
        sender.signal(SIGTERM)
        let status = sender.waitForExit(timeout: 30)
        #expect(status == 0, "the follower exited \(String(describing: status)): \(sender.stderrText.suffix(1500))")
    }

    // MARK: - Writing

    /// Appends lines to `name` as a logger that opens the file by name for each write does, and records them
    /// under `generation` (which defaults to the file's name).
    func append(_ lines: [String], to name: String, generation: String? = nil, newline: Bool = true) throws {
        let file = path(name)
        if !FileManager.default.fileExists(atPath: file) { FileManager.default.createFile(atPath: file, contents: nil) }
        let handle = try #require(FileHandle(forWritingAtPath: file))
        handle.seekToEndOfFile()
        handle.write(Data((lines.joined(separator: "\n") + (newline ? "\n" : "")).utf8))
        try handle.close()
        written[generation ?? name, default: []] += lines
    }

    /// Records lines written by something else (a writer process, a half line completed later).
    func record(_ lines: [String], generation: String) { written[generation, default: []] += lines }

    /// Forgets what a generation was thought to hold (a file the test truncates or deletes unshipped).
    func forget(_ generation: String) { written[generation] = nil }

    func move(_ from: String, _ to: String) throws {
        try? FileManager.default.removeItem(atPath: path(to))
        try FileManager.default.moveItem(atPath: path(from), toPath: path(to))
    }

    /// logrotate's rename shift: NAME.n → NAME.n+1 (the oldest past `keep` deleted), NAME → NAME.1.
    func shift(_ name: String, keep: Int = 20) throws {
        try? FileManager.default.removeItem(atPath: path("\(name).\(keep)"))
        try? FileManager.default.removeItem(atPath: path("\(name).\(keep).gz"))
        for n in stride(from: keep - 1, through: 1, by: -1) {
            for suffix in ["", ".gz"] where FileManager.default.fileExists(atPath: path("\(name).\(n)\(suffix)")) {
                try move("\(name).\(n)\(suffix)", "\(name).\(n + 1)\(suffix)")
            }
        }
        try move(name, "\(name).1")
    }

    func gzip(_ name: String) throws {
        let result = try run("/bin/gzip", [path(name)])
        #expect(result.status == 0, "gzip: \(result.stderr)")
    }

    /// A writer process: `count` lines named `prefix N` at about `rate` a second, each write opening the file by
    /// name (a logger that reopens after rotation), or keeping it open until `reopenAfter` seconds.
    func startWriter(_ name: String, prefix: String, count: Int, rate: Int, keepOpenFor: Double = 0) throws -> Process {
        let script = """
            import sys, time, os
            path, prefix, count, rate, keep = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
            start = time.time(); held = open(path, 'a') if keep > 0 else None
            for i in range(1, count + 1):
                line = f"{prefix} {i}\\n"
                if held is not None and time.time() - start < keep:
                    held.write(line); held.flush()
                else:
                    if held is not None: held.close(); held = None
                    with open(path, 'a') as f: f.write(line)
                if i % max(1, rate // 100) == 0:
                    time.sleep(max(0.0, start + i / rate - time.time()))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script, path(name), prefix, "\(count)", "\(rate)", "\(keepOpenFor)"]
        try process.run()
        return process
    }

    // MARK: - Checking

    /// The collector's lines, once it holds at least `count` (waits up to `timeout` s).
    @discardableResult
    func waitForCollected(_ count: Int, timeout: Double = 60) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        var lines = collected()
        while lines.count < count && Date() < deadline {
            usleep(50_000)
            lines = collected()
        }
        guard lines.count >= count else {
            throw HarnessError("the collector holds \(lines.count) of \(count) lines; senders said: \(senders.map { $0.stderrText.suffix(600) })")
        }
        return lines
    }

    func collected() -> [String] {
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// What the senders wrote on stderr, without log lines.
    var sendersSaid: String {
        senders.map { $0.stderrText.split(separator: "\n").filter { !$0.contains("[LingerLink]") }.suffix(40).joined(separator: "\n") }
            .joined(separator: "\n---\n")
    }

    var writtenCount: Int { written.values.reduce(0) { $0 + $1.count } }

    /// Every line written exactly once (lines that repeat, such as banners, as often as they were written),
    /// none that was not written, and each generation's distinct lines in the order written.
    /// - Parameter maybe: lines that may be there once, or not (written, then lost by something else before
    ///   any sender could be sure to see them).
    func expectExact(_ note: String = "", maybe: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) {
        var got = collected()
        var wanted: [String: Int] = [:]
        for lines in written.values { for line in lines { wanted[line, default: 0] += 1 } }
        var have: [String: Int] = [:]
        for line in got { have[line, default: 0] += 1 }
        for line in maybe where wanted[line] == nil && have[line] == 1 { have[line] = nil }
        got.removeAll { maybe.contains($0) && wanted[$0] == nil }
        let missing = wanted.filter { have[$0.key, default: 0] < $0.value }.map { "\($0.key) ×\($0.value - have[$0.key, default: 0])" }.sorted()
        let extra = have.filter { wanted[$0.key, default: 0] < $0.value }.map { "\($0.key) ×\($0.value - wanted[$0.key, default: 0])" }.sorted()
        #expect(missing.isEmpty && extra.isEmpty,
                "\(note) \(got.count) lines collected of \(writtenCount) written; missing \(missing.count): \(missing.prefix(8)); extra \(extra.count): \(extra.prefix(8)); senders said: \(sendersSaid)",
                sourceLocation: sourceLocation)
        // Order within a generation, among its lines that occur once.
        let position = Dictionary(got.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for (generation, lines) in written {
            let unique = lines.filter { wanted[$0] == 1 }
            let order = unique.compactMap { position[$0] }
            if order != order.sorted() {
                Issue.record("\(note) \(generation): lines out of order", sourceLocation: sourceLocation)
            }
        }
    }
}

/// Lines numbered with a prefix: `prefix 1`, `prefix 2`, ….
func numbered(_ prefix: String, _ range: ClosedRange<Int>) -> [String] { range.map { "\(prefix) \($0)" } }
