import Foundation

/// A throwaway PostgreSQL cluster inside a test's namespace (its own 127.0.0.1:5432), made by
/// scripts/throwaway-postgres and removed by ``stop()`` or when the test lets go of it.
final class PostgresCluster {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/throwaway-postgres").path
    static var isInstalled: Bool { FileManager.default.fileExists(atPath: "/usr/lib/postgresql") }

    let namespace: TestNamespace
    let directory: String
    let url: String
    private var stopped = false

    init(in namespace: TestNamespace) throws {
        self.namespace = namespace
        let directory = "/tmp/linger-pg-\(UUID().uuidString.prefix(8))"
        self.directory = directory
        let result = try Self.runScript(["start", directory, "5432"], namespace: namespace.name)
        guard result.status == 0 else { throw HarnessError("throwaway-postgres start failed: \(result.stderr)") }
        url = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `pg_ctl -m immediate restart`: a crash, then recovery.
    func restart() throws {
        let result = try Self.runScript(["restart", directory], namespace: namespace.name)
        guard result.status == 0 else { throw HarnessError("throwaway-postgres restart failed: \(result.stderr)") }
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

    private static func runScript(_ arguments: [String], namespace: String) throws -> CommandResult {
        let previous = ProcessInfo.processInfo.environment["NETNS"]
        setenv("NETNS", namespace, 1)
        defer { if let previous { setenv("NETNS", previous, 1) } else { unsetenv("NETNS") } }
        return try run("/bin/bash", [Self.script] + arguments, timeout: 120)
    }
}
