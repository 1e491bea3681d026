import ArgumentParser
import Dispatch

/// The `linger` command. The inspector subcommands are synchronous on purpose: `--netns` moves the calling
/// thread into another network namespace, so every probe call of a command must run on that one thread,
/// which a synchronous `run()` guarantees (no suspension point can move it). `serve` and `send` are async.
@main
struct Linger: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linger",
        abstract: "See, explain and fix the life and death of TCP connections on Linux.",
        discussion: """
            Start with `linger doctor`: it reads the kernel's TCP table (as ss does), names the process and \
            the destination behind piles of CLOSE_WAIT, TIME_WAIT, FIN_WAIT2 or SYN_SENT and full accept \
            queues, and says what to change. `linger sockets` lists and counts; `linger explain STATE` says \
            what a state means and which timer ends it on this machine. `linger serve` and `linger send` are \
            the link: a persistent connection that reconnects by itself, never leaks a socket and delivers \
            every line exactly once.
            """,
        version: LingerVersion.number,
        subcommands: [Doctor.self, Sockets.self, Watch.self, Explain.self, Capacity.self, Export.self, Serve.self, Send.self, Lab.self, LabPeerCommand.self]
    )

    /// As ArgumentParser's, except that a usage error is one line, `linger: …`, naming the bad value (the
    /// usage line it would add is 300 characters; `--help` has it). Help and version print as usual.
    ///
    /// Synchronous on purpose: an `async` main runs the main queue with `dispatch_main()`, which ends the
    /// main thread with `pthread_exit()`. Its forced unwind makes the static binary's unwinder (libgcc, with
    /// the frames registered by the static start-up code) sort every frame description of a 75 MB binary
    /// first: 90 ms of CPU at every start (perf; `linger send` of an empty file took 124 ms, now 30). An async
    /// command runs on the concurrency pool while the main thread waits for it. Nothing in linger runs on the
    /// main actor, whose queue nobody drains now. For the same reason every command spells out its
    /// `commandName`: without it ArgumentParser derives each name with `String(describing:)`, whose dynamic
    /// casts scan all of the static binary's protocol conformances (a fifth of a start, measured).
    static func main() {
        _ = StandardDescriptors.closedAtStart  // before any descriptor is opened
        FileLimit.raiseToHard()
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            let message = self.message(for: error)
            guard code != .success, !message.isEmpty else { exit(withError: error) }
            let line = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            StandardOutput.note(line.split(separator: "\n").joined(separator: "; ") + " (see --help)")
            exit(withError: ExitCode(code.rawValue))
        }
        if let asyncCommand = command as? any AsyncParsableCommand {
            let handOver = CommandHandOver(asyncCommand)
            let finished = DispatchSemaphore(value: 0)
            Task.detached {
                do {
                    var command = handOver.command
                    try await command.run()
                } catch {
                    exit(withError: error)
                }
                finished.signal()
            }
            finished.wait()
            return
        }
        do {
            var syncCommand = command
            try syncCommand.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Moves the parsed async command from the main thread to the task that runs it; the main thread only waits
/// afterwards and never touches it again.
private struct CommandHandOver: @unchecked Sendable {
    let command: any AsyncParsableCommand
    init(_ command: any AsyncParsableCommand) { self.command = command }
}
