import ArgumentParser
import LingerCore
import LingerProbe

/// `linger explain STATE`: what a TCP state means and which timer ends it on this machine.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain a TCP state: who is in it, what it waits for, which timer ends it here, what to do.",
        discussion: """
            STATE is a name such as close-wait, TIME_WAIT or FinWait2, or `all`. Timer lengths come from this \
            machine's sysctls. With --os macos|freebsd|windows: what that system does instead, with the source of \
            every statement (docs/FACTS.md §3); where nothing was checked, it says so rather than guess.
            """
    )

    @Argument(help: ArgumentHelp("The state to explain, or all.", valueName: "state"))
    var state: String

    @Option(help: ArgumentHelp("Explain for another system: linux (this machine, the default), macos, freebsd or windows.", valueName: "os"))
    var os: OperatingSystemChoice = .linux

    @OptionGroup var probeOptions: ProbeOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if state.lowercased() != "all" && TCPState(name: state) == nil {
            throw ValidationError("unknown state '\(state)'; use one of \(TCPState.allNames.joined(separator: ", ")) or all")
        }
    }

    func run() throws {
        let states = TCPState(name: state).map { [$0] } ?? TCPState.allCases.filter { $0 != .newSynRecv }
        if os != .linux {
            let facts = states.map { OtherSystemFacts($0, on: os.system) }
            if output.json {
                StandardOutput.print((facts.count == 1 ? facts[0].json : .array(facts.map(\.json))).text(pretty: true))
            } else {
                StandardOutput.print(facts.map(\.text).joined(separator: "\n\n"))
            }
            return
        }
        let sysctls: TCPSysctls
        do { sysctls = try probeOptions.makeProbe().sysctls() } catch let error as ProbeError {
            // As every other command that reads the kernel: one line, exit 3.
            StandardOutput.note(error.message)
            throw ExitCode(3)
        }
        let explanations = states.map { StateExplanation($0, sysctls: sysctls) }
        if output.json {
            let value: JSONValue = explanations.count == 1 ? explanations[0].json : .array(explanations.map(\.json))
            StandardOutput.print(value.text(pretty: true))
        } else {
            StandardOutput.print(explanations.map(\.text).joined(separator: "\n\n"))
        }
    }
}

/// `--os` values; mirrors ``OperatingSystem`` (a conformance on the library type would be public API).
enum OperatingSystemChoice: String, ExpressibleByArgument, CaseIterable {
    case linux, macos, freebsd, windows

    var system: OperatingSystem { OperatingSystem(rawValue: rawValue)! }
}
