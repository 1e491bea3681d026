import ArgumentParser

/// The `linger` command. The inspector subcommands are synchronous on purpose: `--netns` moves the calling
/// thread into another network namespace, so every probe call of a command must run on that one thread,
/// which a synchronous `run()` guarantees (no suspension point can move it). `serve` and `send` are async.
@main
struct Linger: AsyncParsableCommand {
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
    @MainActor static func main() async {
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
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
