import ArgumentParser
import LingerCore
import LingerLab
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `linger lab`: each connection-lifecycle pathology reproduced with real sockets, measured, explained.
struct Lab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Reproduce TCP lifecycle pathologies with real sockets: the naive program beside the correct one.",
        discussion: """
            Needs root: every scenario runs in a network namespace it creates and removes (also on Ctrl-C). \
            Claims and sources: docs/LAB.md.
            """,
        subcommands: [List.self, Run.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Name the scenarios.")
        @OptionGroup var output: OutputOptions

        func run() {
            if output.json {
                let value = JSONValue.array(LabCatalog.scenarios.map {
                    .object([("name", .string($0.name)), ("summary", .string($0.summary)), ("claim", .string($0.claim))])
                })
                StandardOutput.print(value.text(pretty: true))
            } else {
                for scenario in LabCatalog.scenarios { StandardOutput.print(scenario.name.padding(20) + scenario.summary) }
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run a scenario (or all) and print the verdict.",
            discussion: """
                Exit status 0 when every claim held, 1 when one did not, 3 when a run could not complete. \
                JSON (one object per scenario; an array for all): {"scenario", "verdict": "pass"|"fail", "claim", \
                "variants": [{"name", "measurements": {...}}], "durationSeconds", "findings"}.
                """
        )

        @Argument(help: ArgumentHelp("A scenario name from `linger lab list`, or all.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("Write the report into this directory: index.html (one self-contained page), and Markdown with SVG charts.", valueName: "dir"))
        var report: String?

        @Flag(help: "Shortened runs (seconds instead of minutes), as the tests use.")
        var quick = false

        @OptionGroup var output: OutputOptions

        func validate() throws {
            if name != "all" && LabCatalog.scenario(named: name) == nil {
                throw ValidationError("unknown scenario '\(name)'; use one of \(LabCatalog.scenarios.map(\.name).joined(separator: ", ")) or all")
            }
        }

        func run() throws {
            let scenarios = name == "all" ? LabCatalog.scenarios : [LabCatalog.scenario(named: name)!]
            // The report directory is checked before minutes of work, not after.
            if let report {
                mkdir(report, 0o755)
                let probe = "\(report)/.linger-write-check"
                let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    StandardOutput.note("cannot write the report to \(report): \(String(cString: strerror(errno)))")
                    throw ExitCode(64)
                }
                close(fd)
                unlink(probe)
            }
            let runner = LabRunner(executable: selfExecutable(), quick: quick) { StandardOutput.note($0) }
            var runs: [LabRun] = []
            for scenario in scenarios {
                StandardOutput.note("running \(scenario.name)\(quick ? " (quick)" : "")…")
                do {
                    runs.append(try runner.run(scenario))
                } catch {
                    StandardOutput.note("\(scenario.name) could not complete: \(error)")
                    throw ExitCode(3)
                }
            }
            if let report {
                do { try writeReport(runs, to: report) } catch {
                    StandardOutput.note("cannot write the report to \(report): \(error)")
                    throw ExitCode(3)
                }
            }
            if output.json {
                StandardOutput.print((runs.count == 1 ? runs[0].json : .array(runs.map(\.json))).text(pretty: true))
            } else {
                for run in runs {
                    StandardOutput.print("\(run.result.passed ? "PASS" : "FAIL")  \(run.scenario.name)  (\((run.durationSeconds * 10).rounded() / 10) s)")
                    StandardOutput.print("  claim: \(run.scenario.claim)")
                    for finding in run.result.findings { StandardOutput.print("  - \(finding)") }
                    StandardOutput.print("")
                }
                // The verdict table.
                StandardOutput.print("scenario".padding(20) + "verdict".padding(9) + "seconds")
                for run in runs {
                    StandardOutput.print(run.scenario.name.padding(20) + (run.result.passed ? "pass" : "FAIL").padding(9)
                        + String((run.durationSeconds * 10).rounded() / 10))
                }
            }
            if runs.contains(where: { !$0.result.passed }) { throw ExitCode(1) }
        }

        private func writeReport(_ runs: [LabRun], to directory: String) throws {
            mkdir(directory, 0o755)
            for run in runs {
                for (file, contents) in MarkdownReport.files(for: run) { try writeFile("\(directory)/\(file)", contents) }
            }
            try writeFile("\(directory)/index.md", MarkdownReport.index(for: runs))
            try writeFile("\(directory)/index.html", HTMLReport.page(for: runs))
        }

        private func writeFile(_ path: String, _ contents: String) throws {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw ValidationError("\(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let bytes = Array(contents.utf8)
            guard write(fd, bytes, bytes.count) == bytes.count else { throw ValidationError("\(path): short write") }
        }
    }
}

/// Hidden: the lab's peers (`linger lab-peer ROLE ...`), started by `linger lab run` inside its namespace.
struct LabPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lab-peer", shouldDisplay: false)

    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []

    func run() { LabPeer.main(arguments) }
}

/// The running binary, so the lab can re-execute it as its own peers.
func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}
