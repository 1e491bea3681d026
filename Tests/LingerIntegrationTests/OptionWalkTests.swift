import Foundation
import Testing

/// Every option of every command, given values at the edges of what a number can be: the program refuses
/// what it cannot represent with one line and exit 64, runs with what it can, and never crashes or hangs.
/// The options come from the binary itself (`--experimental-dump-help`, the same data `--help` prints), so a
/// new option is walked without anyone remembering to add it here.
extension Integration {
@Suite
struct OptionWalkTests {
    /// Too large for a nanosecond count, for an `Int`, for a `Double`; not a number; below zero; zero.
    static let extremes = [
        "1e12s", "10000000000s", "9223372036854775807", "-9223372036854775808", "99999999999999999999",
        "1e308", "inf", "nan", "-1", "0",
    ]

    /// What each command needs besides the option under test to get past parsing and into its work, kept
    /// local (the walk runs in a namespace of its own) and short.
    static let bases: [String: (options: [String: String], positionals: [String])] = [
        "doctor": ([:], []),
        "sockets": ([:], []),
        "watch": (["--duration": "1", "--interval": "0.2"], []),
        "explain": ([:], ["CLOSE_WAIT"]),
        "capacity": (["--rate": "100"], []),
        "export": (["--listen": "127.0.0.1:0"], []),
        "serve": (["--listen": "127.0.0.1:0", "--sink": "discard"], []),
        "send": (["--give-up-after": "1s", "--backoff-initial": "100ms"], ["127.0.0.1:1"]),
        // Its one option is a report path; a real scenario per value would cost minutes and namespaces, so the
        // walk only checks that a refused scenario name still leaves the option's parsing clean.
        "lab run": ([:], ["nosuch"]),
    ]
    /// Bases that are refused on purpose (above); every other must get past parsing.
    static let refusedBases: Set = ["lab run"]

    struct Option {
        var command: [String]
        var name: String
    }

    /// The value-taking options of every command, from the binary's own description of itself.
    static func walkableOptions() throws -> [Option] {
        let dump = try linger(["--experimental-dump-help"])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var found = [Option]()
        func visit(_ command: [String: Any], path: [String]) {
            for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["kind"] as? String == "option" {
                let names = argument["names"] as? [[String: Any]] ?? []
                if let long = names.first(where: { $0["kind"] as? String == "long" })?["name"] as? String {
                    found.append(Option(command: path, name: "--" + long))
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                if let name = sub["commandName"] as? String { visit(sub, path: path + [name]) }
            }
        }
        visit(try #require(root["command"] as? [String: Any]), path: [])
        return found
    }

    struct Outcome {
        var arguments: [String]
        var status: Int32
        var signalled: Bool
        var stopped: Bool
        var hung: Bool
        var stderr: String
    }

    /// Runs one command line in the namespace: if it is still running after a moment (it took the value and
    /// went to work), it gets SIGTERM and must end within 10 s.
    static func attempt(_ arguments: [String], in ns: TestNamespace, directory: URL) throws -> () -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ipPath)
        process.arguments = ["netns", "exec", ns.name, productsDirectory.appendingPathComponent("linger").path] + arguments
        process.currentDirectoryURL = directory
        let errURL = directory.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let started = Date()
        return {
            defer {
                try? err.close()
                try? FileManager.default.removeItem(at: errURL)
            }
            while process.isRunning && Date().timeIntervalSince(started) < 2 { usleep(20_000) }
            var stopped = false, hung = false
            if process.isRunning {
                stopped = true
                process.terminate()
                let deadline = Date().addingTimeInterval(10)
                while process.isRunning && Date() < deadline { usleep(20_000) }
                if process.isRunning {
                    hung = true
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                }
            }
            return Outcome(
                arguments: arguments, status: process.terminationStatus,
                signalled: process.terminationReason == .uncaughtSignal, stopped: stopped, hung: hung,
                stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
        }
    }

    @Test(.enabled(if: canUseNamespaces)) func everyOptionRefusesWhatItCannotRepresentAndNeverCrashes() throws {
        let options = try Self.walkableOptions()
        // The walk must reach the commands the issue names, or it proves nothing.
        for command in ["serve", "send", "watch", "export", "capacity"] {
            #expect(options.contains { $0.command == [command] }, "no options found for \(command)")
        }
        #expect(options.count >= 60, "only \(options.count) options found")

        let ns = try TestNamespace()
        defer { ns.tearDown() }
        let scratch = try ScratchDirectory(prefix: "linger-option-walk")
        var lines = [[String]]()
        for option in options {
            let base = Self.bases[option.command.joined(separator: " ")] ?? ([:], [])
            for value in Self.extremes {
                var arguments = option.command + base.positionals
                for (name, given) in base.options.sorted(by: { $0.key < $1.key }) where name != option.name {
                    arguments += [name, given]
                }
                lines.append(arguments + [option.name, value])
            }
        }
        // Each base alone must get past parsing, or every value walked with it is refused for the base's fault
        // and the walk proves nothing about the option.
        for (command, base) in Self.bases.sorted(by: { $0.key < $1.key }) where !Self.refusedBases.contains(command) {
            let arguments = command.split(separator: " ").map(String.init) + base.positionals + base.options.sorted(by: { $0.key < $1.key }).flatMap { [$0.key, $0.value] }
            let outcome = try Self.attempt(arguments, in: ns, directory: scratch.url)()
            #expect(outcome.stopped || outcome.status != 64, "the walk's base \(arguments) is itself refused: \(outcome.stderr)")
        }
        // Sixteen at a time: most end at once with a refusal; the ones that took the value wait out their moment.
        var outcomes = [Outcome]()
        for batch in stride(from: 0, to: lines.count, by: 16) {
            let running = try lines[batch..<min(batch + 16, lines.count)].map { try Self.attempt($0, in: ns, directory: scratch.url) }
            outcomes += running.map { $0() }
        }

        var refused = 0
        for outcome in outcomes {
            let shown = outcome.arguments.joined(separator: " ")
            let crashed = (outcome.signalled && !(outcome.stopped && outcome.status == SIGTERM))
                || outcome.stderr.contains("Fatal error") || outcome.stderr.contains("runtime failure")
                || outcome.stderr.contains("Stack dump")
            #expect(!crashed, "linger \(shown) crashed: status \(outcome.status): \(outcome.stderr.suffix(600))")
            #expect(!outcome.hung, "linger \(shown) did not stop within 10 s of SIGTERM")
            if !outcome.stopped && outcome.status == 64 {
                refused += 1
                let errorLines = outcome.stderr.split(separator: "\n")
                #expect(errorLines.count == 1 && errorLines[0].hasPrefix("linger: "),
                        "linger \(shown): a refusal is one line: \(outcome.stderr)")
            }
        }
        // Most of these values are nonsense for most options; a walk where nothing is refused parsed nothing.
        #expect(refused > outcomes.count / 2, "only \(refused) of \(outcomes.count) refused")
    }

    /// The two command lines that crashed with "arithmetic overflow" before.
    @Test func theDurationsThatOverflowedAreRefused() throws {
        for arguments in [["serve", "--idle-timeout", "10000000000s"], ["send", "127.0.0.1:1", "--idle-timeout", "1e12s"]] {
            let result = try linger(arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("--idle-timeout"), "\(arguments): \(result.stderr)")
        }
    }
}
}
