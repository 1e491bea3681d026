public import LingerCore
@preconcurrency import Glibc

/// Runs scenarios: creates a namespace per scenario (root only), runs it, and removes everything it
/// created — peers and namespace — on every path, Ctrl-C included.
public struct LabRunner {
    /// The `linger` binary the peers re-execute (`/proc/self/exe` of the caller).
    public var executable: String
    public var quick: Bool
    public var progress: (String) -> Void

    public init(executable: String, quick: Bool = false, progress: @escaping (String) -> Void = { _ in }) {
        self.executable = executable
        self.quick = quick
        self.progress = progress
    }

    /// Runs one scenario to the end.
    /// - Throws: ``LabError`` when not root, when the namespace cannot be made, or on interruption.
    public func run(_ scenario: any LabScenario) throws -> LabRun {
        guard geteuid() == 0 else {
            throw LabError("the lab creates network namespaces and needs root; run it with sudo")
        }
        LabInterrupt.install()
        Self.removeStaleNamespaces()
        let name = "linger-lab-\(getpid())-\(Self.counter)"
        Self.counter += 1
        try Self.ip(["netns", "add", name])
        defer {
            LabProcess.killAll()
            _ = try? Self.ip(["netns", "delete", name])
            // The far end some scenarios add (LabContext.makeFarNamespace); usually absent.
            if access("/run/netns/\(name)-b", F_OK) == 0 { _ = try? Self.ip(["netns", "delete", name + "-b"]) }
        }
        try Self.ip(["-n", name, "link", "set", "lo", "up"])
        let start = monotonicSeconds()
        // Each scenario runs on a fresh thread: setns() binds the thread to the namespace, and the next
        // scenario needs a thread that is still in the original one.
        let outcome = try onFreshThread {
            let context = try LabContext(namespace: name, executable: executable, progress: progress)
            defer { context.stopPeers() }
            return try scenario.run(in: context, quick: quick)
        }
        return LabRun(scenario: scenario, result: outcome, durationSeconds: monotonicSeconds() - start)
    }

    nonisolated(unsafe) private static var counter = 0

    static func ip(_ arguments: [String]) throws {
        let process = try LabProcess(["/usr/bin/env", "ip"] + arguments)
        let status = process.finish(timeout: 10) ?? -1
        if status != 0 { throw LabError("ip \(arguments.joined(separator: " ")) failed (is iproute2 installed?)") }
    }

    /// Namespaces left by a lab process that was killed outright (SIGKILL cannot be caught).
    static func removeStaleNamespaces() {
        guard let dir = opendir("/run/netns") else { return }
        defer { closedir(dir) }
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let parts = name.split(separator: "-")
            if name.hasPrefix("linger-lab-"), parts.count >= 4, let pid = Int32(parts[2]), kill(pid, 0) != 0 && errno == ESRCH {
                stale.append(name)
            }
        }
        for name in stale { _ = try? ip(["netns", "delete", name]) }
    }
}

private final class ThreadBox: @unchecked Sendable {
    var result: Result<LabResult, any Error>?
    let body: () throws -> LabResult
    init(_ body: @escaping () throws -> LabResult) { self.body = body }
}

/// Runs `body` on a new thread and waits for it.
private func onFreshThread(_ body: @escaping () throws -> LabResult) throws -> LabResult {
    typealias Box = ThreadBox
    let box = Box(body)
    var thread = pthread_t()
    let unmanaged = Unmanaged.passRetained(box)
    let created = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.result = Result { try box.body() }
        return nil
    }, unmanaged.toOpaque())
    guard created == 0 else {
        unmanaged.release()
        throw LabError("cannot start a thread")
    }
    pthread_join(thread, nil)
    return try box.result!.get()
}
