import ArgumentParser
import LingerLink
import Logging
import NIOCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `linger send`: ship lines to a `linger serve`, exactly once, surviving disconnects and restarts.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send lines (a file or stdin) to `linger serve`; exit 0 only when every line is acknowledged.",
        discussion: """
            One line is one message. A message's sequence number is its position in the input, so a sender \
            restarted with the same --client-id on the same input continues where the server's \
            acknowledgement stands: nothing repeated, nothing skipped. Without --client-id a new random id is \
            used and the whole input is sent. Only one sender may use a client id at a time: when another \
            sender takes it over, this one stops with exit status 2 rather than fight back.
            Exit status: 0 all acknowledged; 1 failed or interrupted with messages unacknowledged; 2 the \
            server refused the client for good (a wrong token, a message it cannot take, another sender \
            took over the client id).
            Examples:
              linger send 127.0.0.1:7070 --file app.log --client-id web-1 --progress
              tail -F app.log | linger send logs.internal:7070 --client-id web-1
            """
    )

    @Argument(help: ArgumentHelp("The server, HOST:PORT. More servers can follow; they are tried in turn.", valueName: "host:port"))
    var servers: [HostPort]

    @Option(help: ArgumentHelp("Read lines from this file instead of stdin.", valueName: "path"))
    var file: String?

    @Flag(help: "After the end of the file, keep reading lines appended to it (like tail -f) until interrupted.")
    var follow = false

    @Option(name: .customLong("client-id"), help: ArgumentHelp("Stable id of this sender (1-128 of A-Z a-z 0-9 . _ : -).", valueName: "id"))
    var clientID: String?

    @Option(name: .customLong("client-id-file"), help: ArgumentHelp("Read the id from this file, creating it with a new random id if missing.", valueName: "path"))
    var clientIDFile: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("Present the first token in this file.", valueName: "path"))
    var tokenFile: String?

    @Flag(help: "Show sent, acknowledged, in flight, reconnects and rate on stderr.")
    var progress = false

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Replace a connection that receives nothing for this long.", valueName: "duration"))
    var idleTimeout = DurationArgument(.seconds(30))

    @Option(name: .customLong("backoff-initial"), help: ArgumentHelp("First reconnect delay (jittered).", valueName: "duration"))
    var backoffInitial = DurationArgument(.milliseconds(100))

    @Option(name: .customLong("backoff-max"), help: ArgumentHelp("Longest reconnect delay.", valueName: "duration"))
    var backoffMax = DurationArgument(.seconds(10))

    @Option(name: .customLong("outbox-messages"), help: "Unacknowledged messages held before reading more input.")
    var outboxMessages = 1_000_000

    @Flag(help: "Log connection events to stderr.")
    var verbose = false

    func validate() throws {
        if servers.isEmpty { throw ValidationError("name at least one server as HOST:PORT") }
        if let clientID, !LinkClientID.isValid(clientID) {
            throw ValidationError("client id '\(clientID)' must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        if clientID != nil && clientIDFile != nil { throw ValidationError("give --client-id or --client-id-file, not both") }
        if follow && file == nil { throw ValidationError("--follow needs --file (stdin is followed anyway)") }
        if backoffMax.milliseconds < backoffInitial.milliseconds { throw ValidationError("--backoff-max must be at least --backoff-initial") }
        if outboxMessages < 1 { throw ValidationError("--outbox-messages must be at least 1") }
    }

    func run() async throws {
        let logger = makeLogger(label: "linger.send", verbose: verbose)
        let id: String
        let token: String
        let input: Int32
        do {
            if let clientID { id = clientID }
            else if let clientIDFile { id = try LinkClientID.loadOrCreate(at: clientIDFile) }
            else { id = LinkClientID.generate() }
            token = try tokenFile.map { try loadTokens(from: $0).first ?? "" } ?? ""
            input = try file.map(openInput) ?? 0
        } catch {
            StandardOutput.note("\(error)")
            throw ExitCode.failure
        }
        defer { if input != 0 { close(input) } }
        let client = LinkClient(
            configuration: LinkClientConfiguration(
                endpoints: servers.map { .init(host: $0.host, port: $0.port) }, clientID: id, token: token,
                outboxMessages: outboxMessages, idleTimeout: idleTimeout.duration,
                backoff: ReconnectBackoff(initial: backoffInitial.duration, maximum: backoffMax.duration)),
            logger: logger)
        let sender = LineSender(client: client, input: input, follow: follow, progress: progress)
        signal(SIGPIPE, SIG_IGN)
        let outcome = await sender.run()
        switch outcome {
        case .delivered(let count, let skipped):
            if progress || skipped > 0 {
                StandardOutput.note("\(count) lines acknowledged" + (skipped > 0 ? " (the first \(skipped) were already on the server)" : ""))
            }
        case .refused(let message):
            StandardOutput.note(message)
            throw ExitCode(2)
        case .failed(let message):
            StandardOutput.note(message)
            throw ExitCode.failure
        }
    }

    private func openInput(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }
}
