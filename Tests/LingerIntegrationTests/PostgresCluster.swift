import Foundation

/// A throwaway PostgreSQL cluster inside a test's namespace (its own 127.0.0.1:5432), made by
/// scripts/throwaway-postgres and removed by ``stop()`` or when the test lets go of it.
final class PostgresCluster {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/throwaway-postgres").path

    let namespace: TestNamespace
    let directory: String
    let url: String
    private var stopped = false

    init(in namespace: TestNamespace, maximumConnections: Int = 200) throws {
        self.namespace = namespace
        let directory = "/tmp/linger-pg-\(UUID().uuidString.prefix(8))"
        self.directory = directory
        let result = try Self.runScript(["start", directory, "5432"], namespace: namespace.name, extra: ["MAX_CONNECTIONS": "\(maximumConnections)"])
        guard result.status == 0 else { throw HarnessError("throwaway-postgres start failed: \(result.stderr)") }
        url = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `pg_ctl -m immediate restart`: a crash, then recovery.
    func restart() throws {
        let result = try Self.runScript(["restart", directory], namespace: namespace.name)
        guard result.status == 0 else { throw HarnessError("throwaway-postgres restart failed: \(result.stderr)") }
    }

    /// Down, data kept (`pg_ctl stop -m fast`), until ``resume()``.
    func halt() throws {
        let result = try Self.runScript(["halt", directory], namespace: namespace.name)
        guard result.status == 0 else { throw HarnessError("throwaway-postgres halt failed: \(result.stderr)") }
    }

    func resume() throws {
        let result = try Self.runScript(["resume", directory], namespace: namespace.name)
        guard result.status == 0 else { throw HarnessError("throwaway-postgres resume failed: \(result.stderr)") }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? Self.runScript(["stop", directory], namespace: namespace.name)
    }

    deinit { stop() }

    /// SQL through psql in the namespace; unaligned, tuples only.
    @discardableResult
    func psql(_ sql: String) throws -> String {
        let result = try namespace.exec(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        guard result.status == 0 else { throw HarnessError("psql failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func runScript(_ arguments: [String], namespace: String, extra: [String: String] = [:]) throws -> CommandResult {
        try runDaemonizing("/bin/bash", [script] + arguments, environment: extra.merging(["NETNS": namespace]) { $1 })
    }
}

/// Runs a program that leaves a daemon behind (`pg_ctl start`, `haproxy -D`) to completion, with posix_spawn
/// and waitpid. Foundation's Process misses such a program's exit (it stays a zombie and `isRunning` stays
/// true), so ``run(_:_:timeout:)`` would wait for its deadline.
func runDaemonizing(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> CommandResult {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("linger-daemon-\(UUID().uuidString).out").path
    let errorPath = outputPath + ".err"
    defer {
        unlink(outputPath)
        unlink(errorPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var variables = ProcessInfo.processInfo.environment
    for (key, value) in extra { variables[key] = value }
    let environment: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in environment { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environment)
    guard spawned == 0 else { throw HarnessError("cannot run \(executable): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return CommandResult(
        status: (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f),
        stdout: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
}
