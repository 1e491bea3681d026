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
        version: "0.1.0",
        subcommands: [Doctor.self, Sockets.self, Watch.self, Explain.self, Capacity.self, Export.self, Serve.self, Send.self, Lab.self, LabPeerCommand.self]
    )
}
