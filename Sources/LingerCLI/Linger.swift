import ArgumentParser

/// The `linger` command. Synchronous on purpose: `--netns` moves the calling thread into another network
/// namespace, so every probe call must run on that same (main) thread.
@main
struct Linger: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linger",
        abstract: "See, explain and fix the life and death of TCP connections on Linux.",
        discussion: """
            Start with `linger doctor`: it reads the kernel's TCP table (as ss does), names the process and \
            the destination behind piles of CLOSE_WAIT, TIME_WAIT, FIN_WAIT2 or SYN_SENT and full accept \
            queues, and says what to change. `linger sockets` lists and counts; `linger explain STATE` says \
            what a state means and which timer ends it on this machine.
            """,
        version: "0.1.0",
        subcommands: [Doctor.self, Sockets.self, Explain.self]
    )
}
