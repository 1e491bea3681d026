@preconcurrency import Glibc

/// A child process of the lab, started with posix_spawn (no Foundation), its stdout read line by line.
/// Every child gets its own process group, so cleanup can kill it and anything it started.
final class LabProcess {
    let pid: pid_t
    private let stdoutFD: Int32
    private var pending: [UInt8] = []
    private(set) var exitStatus: Int32?

    /// Starts `arguments[0]` (an absolute path) with the rest as arguments.
    init(_ arguments: [String]) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw LabError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        // Close-on-exec, so no other child inherits this pipe (the child's copy on fd 1 is made by dup2).
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var childPID: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let result = posix_spawn(&childPID, arguments[0], &actions, &attributes, cArguments, environ)
        close(pipeFDs[1])
        guard result == 0 else {
            close(pipeFDs[0])
            throw LabError("cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        }
        pid = childPID
        stdoutFD = pipeFDs[0]
        LabProcess.registry.insert(pid)
    }

    /// The next line of stdout, waiting up to `timeout` seconds; nil at EOF or timeout.
    func readLine(timeout: Double = 30) throws -> String? {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            try LabInterrupt.check()
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return nil }
            var poller = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min(remaining, 0.1) * 1000)) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(stdoutFD, &buffer, buffer.count)
            if n <= 0 { return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self) }
            pending += buffer[0..<n]
        }
    }

    /// Reads lines until one starts with `prefix` and returns it.
    func expectLine(_ prefix: String, timeout: Double = 30) throws -> String {
        while let line = try readLine(timeout: timeout) {
            if line.hasPrefix(prefix) { return line }
        }
        throw LabError("a lab peer (pid \(pid)) did not report '\(prefix)'")
    }

    /// Sends `signal` to the child's whole process group.
    func signal(_ signal: Int32 = SIGTERM) {
        if exitStatus == nil { kill(-pid, signal) }
    }

    /// Waits up to `timeout` seconds; kills the group if it is still running.
    @discardableResult
    func finish(timeout: Double = 5) -> Int32? {
        let deadline = monotonicSeconds() + timeout
        while exitStatus == nil {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { exitStatus = status; break }
            if result < 0 { exitStatus = -1; break }
            if monotonicSeconds() > deadline {
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                exitStatus = -1
                break
            }
            usleep(10_000)
        }
        close(stdoutFD)
        LabProcess.registry.remove(pid)
        return exitStatus
    }

    deinit {
        if exitStatus == nil { signal(SIGKILL); finish(timeout: 1) }
    }

    /// Every child still running, for cleanup after Ctrl-C.
    nonisolated(unsafe) static var registry = Set<pid_t>()

    static func killAll() {
        for pid in registry { kill(-pid, SIGKILL) }
        for pid in registry { var status: Int32 = 0; waitpid(pid, &status, 0) }
        registry.removeAll()
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Why a lab run could not go on.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Ctrl-C and SIGTERM during a run: the handler only sets a flag; every wait checks it and throws, so the
/// runner's cleanup (kill the peers, delete the namespace) always runs on the normal path.
enum LabInterrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        signal(SIGINT) { _ in LabInterrupt.requested = 1 }
        signal(SIGTERM) { _ in LabInterrupt.requested = 1 }
        // A parent may start us with these blocked (a blocked mask survives exec: Foundation's Process,
        // spawning from one of Swift's worker threads, passes on theirs). Ctrl-C must still stop a run, so the
        // thread that runs the lab, and the scenario threads it starts, take them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    static func check() throws {
        if requested != 0 { throw LabError("interrupted") }
    }

    /// Sleeps in short slices, so an interrupt is noticed within 50 ms.
    static func sleep(_ seconds: Double) throws {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            try check()
            usleep(UInt32(min(0.05, max(0, deadline - monotonicSeconds())) * 1_000_000))
        }
    }
}
