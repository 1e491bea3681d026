import Foundation
import Testing

/// The PostgreSQL the sink tests write to: `LINGER_TEST_POSTGRES` when scripts/test started a throwaway
/// cluster, or else one this process starts with scripts/throwaway-postgres and removes when it exits. Each
/// test works in tables of its own, so tests never see each other's rows.
enum TestDatabase {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts")

    static let url: String? = {
        if let url = ProcessInfo.processInfo.environment["LINGER_TEST_POSTGRES"], !url.isEmpty { return url }
        guard getuid() == 0 else { return nil }
        let directory = "/tmp/linger-pg-unit-\(getpid())"
        let result = shell([scripts.appendingPathComponent("throwaway-postgres").path, "start", directory])
        guard result.status == 0 else { return nil }
        ownCluster = directory
        atexit {
            if let directory = TestDatabase.ownCluster {
                _ = TestDatabase.shell([TestDatabase.scripts.appendingPathComponent("throwaway-postgres").path, "stop", directory])
            }
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    nonisolated(unsafe) static var ownCluster: String?

    /// A fresh table name for one test.
    static func table() -> String { "t_" + UUID().uuidString.prefix(8).lowercased().replacingOccurrences(of: "-", with: "") }

    /// The URL with `table=` set.
    static func url(table: String) throws -> String { try #require(url, "no PostgreSQL: install Debian's postgresql and postgresql-client (scripts/test does)") + "?table=\(table)" }

    /// The server's URL with another user, password, database or port.
    static func url(replacing part: String, with value: String, last: Bool = false) throws -> String {
        let url = try #require(url)
        guard last else { return url.replacingOccurrences(of: part, with: value) }
        let range = try #require(url.range(of: part, options: .backwards))
        return url.replacingCharacters(in: range, with: value)
    }

    /// Runs SQL with psql and returns its unaligned, tuples-only output.
    @discardableResult
    static func psql(_ sql: String) throws -> String {
        let result = shell(["/usr/bin/psql", try #require(url), "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        guard result.status == 0 else { throw TestDatabaseError(text: "psql failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program to completion with posix_spawn and waitpid, output through a file. Not Foundation's
    /// Process: when the program leaves a daemon behind (pg_ctl start), Process can miss the program's exit.
    static func shell(_ arguments: [String]) -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("linger-pg-test-\(UUID().uuidString).out").path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        guard spawned == 0 else { return (-1, "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }
}

struct TestDatabaseError: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
}
