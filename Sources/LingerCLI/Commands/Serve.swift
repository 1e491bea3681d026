import ArgumentParser
import LingerLink
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `linger serve`: the receiving end of the link.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive lines from `linger send` clients, exactly once, into stdout, a file, or nowhere.",
        discussion: """
            Listens on 127.0.0.1:7070 by default. Every accepted message is written followed by a newline, in \
            acceptance order, and acknowledged only once the sink holds it. With --sink file:PATH the clients' \
            high-water marks are kept in PATH.linger-state, so a restarted server resumes exactly: nothing \
            acknowledged is lost and nothing is written twice. Keep PATH.linger-state with PATH (back them up \
            together): without it the server refuses a non-empty PATH rather than guess what is in it.

            A slow or failing sink (a full disk) never drops clients: the server stops reading from them, keeps \
            them alive with PINGs, retries the sink with backoff, and resumes exactly when it recovers. Only \
            one connection speaks for a client id: a newer one takes over and the older sender is told to stop.

            SIGTERM or SIGINT: stop accepting, send GOAWAY, let clients close first, close stragglers after \
            --shutdown-deadline. Exit status: 0 after a clean stop; 1 when the sink cannot be opened or fails \
            in a way a retry cannot fix (standard output's reader went away), or the address cannot be bound.
            Examples:
              linger serve --sink file:/var/log/shipped.log --token-file /etc/linger/tokens
              linger serve --sink file:/var/log/app.log --adopt-existing
              linger serve --listen 0.0.0.0:7070 --sink discard
            """
    )

    @Option(help: ArgumentHelp("Address to listen on, HOST:PORT.", valueName: "host:port"))
    var listen: HostPort = HostPort(host: "127.0.0.1", port: 7070)

    @Option(help: ArgumentHelp("Where accepted messages go: stdout, file:PATH, or discard.", valueName: "sink"))
    var sink: String = "stdout"

    @Option(help: ArgumentHelp("With a file sink, when to fsync: batch (before every ack), interval:DURATION, or none.", valueName: "policy"))
    var fsync: String = "batch"

    @Option(name: .customLong("token-file"), help: ArgumentHelp("Accept only clients presenting one of the tokens in this file (one per line).", valueName: "path"))
    var tokenFile: String?

    @Option(name: .customLong("max-connections"), help: "Refuse connections beyond this many (the client retries later).")
    var maxConnections = 1024

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Close a connection that sends nothing for this long (30s, 500ms, 2m).", valueName: "duration"))
    var idleTimeout = DurationArgument(.seconds(30))

    @Option(name: .customLong("close-deadline"), help: ArgumentHelp("After GOAWAY or ERROR, how long a client gets to close first before the server closes.", valueName: "duration"))
    var closeDeadline = DurationArgument(.seconds(5))

    @Option(name: .customLong("shutdown-deadline"), help: ArgumentHelp("On shutdown, how long clients get to close first.", valueName: "duration"))
    var shutdownDeadline = DurationArgument(.seconds(10))

    @Flag(name: .customLong("adopt-existing"), help: ArgumentHelp(
        "With a file sink: keep a non-empty file that has no state log as if linger had written it, and append after it "
            + "(by default such a file is refused, never truncated). Senders that shipped into it before resend from 0."))
    var adoptExisting = false

    @Flag(name: .customLong("abortive-close"), help: "Close connections with RST (SO_LINGER 0): no TIME_WAIT, unsent data lost. For experiments only.")
    var abortiveClose = false

    @Flag(help: "Log each connection event to stderr.")
    var verbose = false

    func validate() throws {
        guard sink == "stdout" || sink == "discard" || (sink.hasPrefix("file:") && sink.count > 5) else {
            throw ValidationError("--sink must be stdout, discard or file:PATH, got '\(sink)'")
        }
        _ = try fsyncPolicy()
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be at least 1") }
        guard idleTimeout.milliseconds > 0 else { throw ValidationError("--idle-timeout must be more than 0") }
    }

    func fsyncPolicy() throws -> FsyncPolicy {
        if fsync == "batch" { return .everyBatch }
        if fsync == "none" { return .none }
        if fsync.hasPrefix("interval:"), let interval = DurationArgument(argument: String(fsync.dropFirst(9))) {
            return .interval(interval.duration)
        }
        throw ValidationError("--fsync must be batch, none or interval:DURATION (e.g. interval:1s), got '\(fsync)'")
    }

    func run() async throws {
        let logger = makeLogger(label: "linger.serve", verbose: verbose)
        let theSink: any LinkSink
        do {
            switch sink {
            case "stdout": theSink = StandardOutputSink()
            case "discard": theSink = DiscardSink()
            default:
                let fileSink = try FileSink(path: String(sink.dropFirst(5)), policy: try fsyncPolicy(), adoptExisting: adoptExisting)
                for note in fileSink.openingNotes { StandardOutput.note(note) }
                theSink = fileSink
            }
        } catch let error as LinkSinkError {
            StandardOutput.note(error.message)
            throw ExitCode.failure
        }
        // A reader that closes standard output must be an error we report, not a signal that kills us; and a
        // file over RLIMIT_FSIZE must be EFBIG (retried, like a full disk), not SIGXFSZ.
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        var tokens: [String] = []
        if let tokenFile {
            do {
                tokens = try loadTokens(from: tokenFile)
            } catch {
                StandardOutput.note("\(error)")
                throw ExitCode.failure
            }
            guard !tokens.isEmpty else {
                StandardOutput.note("\(tokenFile) holds no token; write one per line")
                throw ExitCode.failure
            }
        }
        let server = LinkServer(
            configuration: LinkServerConfiguration(
                host: listen.host, port: listen.port, sink: theSink, tokens: tokens, maximumConnections: maxConnections,
                idleTimeout: idleTimeout.duration, closeDeadline: closeDeadline.duration,
                shutdownDeadline: shutdownDeadline.duration, abortiveClose: abortiveClose),
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        async let announce: Void = {
            if let address = try? await server.listeningAddress() {
                let host = address.ipAddress.map { address.protocol == .inet6 ? "[\($0)]" : $0 } ?? "?"
                StandardOutput.note("listening on \(host):\(address.port ?? 0) (sink \(sink))")
            }
        }()
        do {
            try await group.run()
        } catch let error as LinkError {
            StandardOutput.note(error.message)
            throw ExitCode.failure
        }
        await announce
    }
}

/// Logs to stderr; `info` and above, or everything with `--verbose`.
func makeLogger(label: String, verbose: Bool) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = verbose ? .debug : .warning
    return logger
}
