import Foundation
import Testing

/// Whether the machine lets us create network namespaces (root on Linux); integration tests need it.
let canUseNamespaces: Bool = {
    #if os(Linux)
    return getuid() == 0
    #else
    return false
    #endif
}()

/// The repository's root (scripts, deploy files).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The directory holding the built `linger` and `linger-fixture` binaries (the test bundle sits beside them).
let productsDirectory: URL = {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
        Bundle.main.bundleURL,
    ]
    // Where the build put `linger` (not a tool check: a missing build product fails every test that runs it).
    for directory in candidates {
        var current = directory
        for _ in 0..<3 {
            if FileManager.default.fileExists(atPath: current.appendingPathComponent("linger").path) { return current }
            current = current.deletingLastPathComponent()
        }
    }
    return candidates[0]
}()

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(object as? [String: Any], "stdout is not a JSON object: \(stdout.prefix(300))")
    }
}

/// Runs a program to completion with a deadline; output is collected through files so large output never
/// blocks the child on a full pipe.
@discardableResult
func run(_ executable: String, _ arguments: [String], timeout: Double = 60) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("linger-test-\(UUID().uuidString).out")
    let errURL = outURL.appendingPathExtension("err")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        // SIGTERM first (a linger process then says why it stops), SIGKILL if that is ignored: the suite must
        // go on and report the failure rather than wait forever on one child.
        process.terminate()
        let grace = Date().addingTimeInterval(10)
        while process.isRunning && Date() < grace { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
    try out.close()
    try err.close()
    return CommandResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

/// `linger ARGS` from this build.
func linger(_ arguments: [String]) throws -> CommandResult {
    try run(productsDirectory.appendingPathComponent("linger").path, arguments)
}

/// Debian's iproute2 installs it here; ``TestNamespace`` fails naming the package when it is absent.
let ipPath = "/usr/bin/ip"

/// A network namespace owned by one test: created with loopback up, deleted (with every fixture in it
/// stopped first) when the test ends, pass or fail.
final class TestNamespace {
    let name: String
    private(set) var fixtures: [FixtureProcess] = []
    private static let counter = Counter()

    init() throws {
        name = "linger-test-\(getpid())-\(TestNamespace.counter.next())"
        _ = try installedTool(ipPath, package: "iproute2")
        try ip(["netns", "add", name])
        try ip(["-n", name, "link", "set", "lo", "up"])
        // On loopback a late duplicate ACK can reach a server socket that already finished and draw an RST,
        // and an in-window RST kills TIME_WAIT (FACTS §2.2). RFC 1337 protection keeps TIME_WAIT counts exact.
        try sysctl("net.ipv4.tcp_rfc1337", "1")
    }

    deinit { tearDown() }

    @discardableResult
    func ip(_ arguments: [String]) throws -> CommandResult {
        let result = try run(ipPath, arguments)
        if result.status != 0 { throw HarnessError("ip \(arguments.joined(separator: " ")) failed: \(result.stderr)") }
        return result
    }

    /// Sets a per-namespace sysctl such as `net.ipv4.ip_local_port_range`.
    func sysctl(_ key: String, _ value: String) throws {
        let path = "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
        try exec(["/bin/sh", "-c", "echo '\(value)' > \(path)"])
    }

    /// Runs a command inside the namespace.
    @discardableResult
    func exec(_ command: [String]) throws -> CommandResult {
        try run(ipPath, ["netns", "exec", name] + command)
    }

    /// Starts `linger-fixture ARGS` inside the namespace and waits for its "ready" line.
    func start(_ arguments: [String]) throws -> FixtureProcess {
        let fixture = try FixtureProcess(namespace: name, ipPath: ipPath, arguments: arguments)
        fixtures.append(fixture)
        return fixture
    }

    /// `ss -Htan` in the namespace, counted by kernel state name.
    func ssCounts() throws -> [String: Int] {
        let result = try exec(["ss", "-Htan"])
        var counts = [String: Int]()
        for line in result.stdout.split(separator: "\n") {
            guard let label = line.split(separator: " ").first else { continue }
            counts[ssStateNames[String(label)] ?? String(label), default: 0] += 1
        }
        return counts
    }

    /// Waits (up to 10 s) until `ss` shows at least `count` sockets in `state`, so a test inspects a table
    /// that has settled rather than one still mid-handshake or mid-close.
    func waitFor(_ state: String, atLeast count: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try ssCounts()[state, default: 0] >= count { return }
            usleep(50_000)
        }
        throw HarnessError("namespace \(name) never reached \(count) sockets in \(state): \(try ssCounts())")
    }

    /// Stops every fixture (they close their sockets on stdin EOF), checks that nothing they held was left
    /// in CLOSE_WAIT, then deletes the namespace.
    func tearDown() {
        for fixture in fixtures { fixture.stop() }
        fixtures.removeAll()
        _ = try? run(ipPath, ["netns", "delete", name])
    }

    /// After stopping the fixtures: the CLOSE_WAIT sockets left in the namespace (should be none).
    func stopFixturesAndCountCloseWait() throws -> Int {
        for fixture in fixtures { fixture.stop() }
        fixtures.removeAll()
        let result = try exec(["ss", "-Htan", "state", "close-wait"])
        return result.stdout.split(separator: "\n").count
    }
}

/// A running `linger-fixture`; its stdin is our pipe, and closing it asks the fixture to close and exit.
final class FixtureProcess {
    let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    let readyLine: String

    init(namespace: String, ipPath: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: ipPath)
        process.arguments = ["netns", "exec", namespace, productsDirectory.appendingPathComponent("linger-fixture").path] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        // Read the first line ("ready ...") with a deadline.
        var line = Data()
        let deadline = Date().addingTimeInterval(30)
        let fd = stdout.fileHandleForReading.fileDescriptor
        var byte: UInt8 = 0
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            if read(fd, &byte, 1) != 1 { break }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        readyLine = String(decoding: line, as: UTF8.self)
        guard readyLine.hasPrefix("ready") else {
            stop()
            throw HarnessError("linger-fixture \(arguments.joined(separator: " ")) did not get ready: '\(readyLine)'")
        }
    }

    /// The fixture's own pid (the `ip netns exec` wrapper execs it, so it is the process's pid).
    var pid: Int32 { process.processIdentifier }

    /// `key=value` from the ready line.
    func value(_ key: String) -> String? {
        readyLine.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    func stop() {
        guard process.isRunning else { return }
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? stdout.fileHandleForReading.close()
    }

    deinit { stop() }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int { lock.withLock { value += 1; return value } }
}

/// `ss` column labels → kernel state names.
let ssStateNames = [
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV", "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT", "UNCONN": "CLOSE", "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING",
]

/// Open fds of this test process, to prove the harness itself leaks nothing.
func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// A `linger` process (serve or send) inside a namespace: stdin is a pipe we write, stdout and stderr go to
/// files we read, and it can be signalled and awaited with a deadline.
final class LingerProcess {
    let process = Process()
    let stdin = Pipe()
    let stdoutURL: URL
    let stderrURL: URL
    private let stdoutHandle: FileHandle
    private let stderrHandle: FileHandle

    /// When the process was started with `stdoutPipe`, the pipe's read end (a test reads it when it chooses).
    let stdoutPipe: Pipe?

    /// - Parameter stdinFile: a file to read stdin from instead of our pipe (a test then cannot block writing
    ///   to a process that stopped reading).
    init(namespace: String, arguments: [String], stdoutPipe: Bool = false, stdinFile: String? = nil) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("linger-proc-\(UUID().uuidString)")
        self.stdoutPipe = stdoutPipe ? Pipe() : nil
        stdoutURL = base.appendingPathExtension("out")
        stderrURL = base.appendingPathExtension("err")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        stdoutHandle = try FileHandle(forWritingTo: stdoutURL)
        stderrHandle = try FileHandle(forWritingTo: stderrURL)
        process.executableURL = URL(fileURLWithPath: ipPath)
        process.arguments = ["netns", "exec", namespace, productsDirectory.appendingPathComponent("linger").path] + arguments
        // The child gets its own copy of a stdin file's descriptor; ours is closed once it started (or failed to).
        var inputFile: FileHandle?
        defer { try? inputFile?.close() }
        if let stdinFile {
            guard let input = FileHandle(forReadingAtPath: stdinFile) else { throw HarnessError("cannot read \(stdinFile)") }
            inputFile = input
            process.standardInput = input
        } else {
            process.standardInput = stdin
        }
        process.standardOutput = self.stdoutPipe ?? stdoutHandle
        process.standardError = stderrHandle
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    var stdoutText: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// Waits until stderr contains `text` (or the process exits, or 20 s pass).
    func waitForStderr(_ text: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderrText.contains(text) { return }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw HarnessError("no '\(text)' on stderr of \(process.arguments ?? []): \(stderrText)")
    }

    func write(_ text: String) throws { try stdin.fileHandleForWriting.write(contentsOf: Data(text.utf8)) }
    func closeStdin() { try? stdin.fileHandleForWriting.close() }
    func signal(_ signal: Int32) { if process.isRunning { kill(pid, signal) } }

    /// The exit status, or nil if it did not exit in time (it is then killed).
    func waitForExit(timeout: Double = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    /// Open fds of the process right now.
    var openDescriptors: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1 }

    deinit {
        closeStdin()
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        try? stdoutHandle.close()
        try? stderrHandle.close()
        try? FileManager.default.removeItem(at: stdoutURL)
        try? FileManager.default.removeItem(at: stderrURL)
    }
}

extension TestNamespace {
    /// Starts `linger ARGS` in the namespace.
    func linger(_ arguments: [String], stdoutPipe: Bool = false, stdinFile: String? = nil) throws -> LingerProcess {
        try LingerProcess(namespace: name, arguments: arguments, stdoutPipe: stdoutPipe, stdinFile: stdinFile)
    }

    /// The kernel's count of accepted connections in this namespace (`Tcp: PassiveOpens`): how many times
    /// senders connected, whatever they said.
    func passiveOpens() throws -> Int {
        let snmp = try exec(["cat", "/proc/net/snmp"]).stdout.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }
        let names = snmp.first?.split(separator: " ") ?? [], values = snmp.last?.split(separator: " ") ?? []
        return names.firstIndex(of: "PassiveOpens").map { Int(values[$0]) ?? -1 } ?? -1
    }

    /// Sockets in `state` (kernel name) held by `pid`, from `ss -p` in the namespace.
    func sockets(in state: String, heldBy pid: Int32) throws -> Int {
        let filter = state.lowercased().replacingOccurrences(of: "_", with: "-")
        let result = try exec(["ss", "-Htanp", "state", filter])
        return result.stdout.split(separator: "\n").filter { $0.contains("pid=\(pid),") }.count
    }

    /// All sockets in `state` in the namespace.
    func count(_ state: String) throws -> Int { try ssCounts()[state, default: 0] }
}

/// A directory under /tmp for one test, removed when the test lets go of it (pass or fail).
final class ScratchDirectory {
    let url: URL

    init(prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A tool a test runs (Chromium, Prometheus, logrotate): its path, or a failure naming the Debian package that
/// provides it. Never a skip: `scripts/test` installs every one, so a missing tool means a broken setup.
struct MissingTool: Error, CustomStringConvertible {
    var description: String
}

func installedTool(_ path: String, package: String) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: path) else {
        // Thrown, so the test fails with this message (Swift Testing records an error thrown from a test).
        throw MissingTool(description: "\(path) is missing: install Debian's \(package) package (scripts/test does)")
    }
    return path
}

/// Bytes in a spool's segment files: what a sender has put on disk (lines plus 8 bytes of record header each).
func spooledBytes(in spool: String) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".seg") }.reduce(0) {
        $0 + ((try? FileManager.default.attributesOfItem(atPath: spool + "/" + $1)[.size] as? Int) ?? 0)
    }
}
