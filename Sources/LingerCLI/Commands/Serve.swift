import ArgumentParser
import Synchronization
import LingerLink
import LingerPostgres
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
        commandName: "serve",
        abstract: "Receive lines from `linger send` clients, exactly once, into stdout, a file, PostgreSQL, or nowhere.",
        discussion: """
            Listens on 127.0.0.1:7070 by default. Every accepted message is written followed by a newline, in \
            acceptance order, and acknowledged only once the sink holds it. With --sink file:PATH the clients' \
            high-water marks are kept in PATH.linger-state, so a restarted server resumes exactly: nothing \
            acknowledged is lost and nothing is written twice. Keep PATH.linger-state with PATH (back them up \
            together): without it the server refuses a non-empty PATH rather than guess what is in it.

            With --sink postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME] each line is a row of linger_lines \
            (client_id, stream, seq, body, received_at), and each stream's mark is in linger_lines_marks, moved in \
            the same transaction; the tables are created when missing. Any number of collectors may share one \
            database behind a load balancer: the resume point comes from the database, and a client id connected \
            to two collectors at once is fenced there (the older connection is told to stop). Parts left out of \
            the URL come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and PGSSLMODE. While the database is \
            down or restarting the server keeps its clients, acknowledges nothing, and reconnects with backoff.

            A slow or failing sink (a full disk) never drops clients: the server stops reading from them, keeps \
            them alive with PINGs, retries the sink with backoff, and resumes exactly when it recovers. Only \
            one connection speaks for a client id: a newer one takes over and the older sender is told to stop.

            SIGTERM or SIGINT: stop accepting, send GOAWAY, let clients close first, close stragglers; the whole \
            stop takes at most --shutdown-deadline (10 s) in every state: a sink still failing (a full disk, a \
            read-only filesystem, a database that is down) stops being retried, and a sink stuck in the kernel \
            is left behind one second later. A second signal exits at once. What was not stored was never \
            acknowledged: the senders send it again to the next server. Exit status: 0 after a clean stop; 1 \
            when the sink cannot be opened or fails in a way a retry cannot fix (standard output's reader went \
            away), when the stop left a failing sink, or the address cannot be bound.
            Examples:
              linger serve --sink file:/var/log/shipped.log --token-file /etc/linger/tokens
              linger serve --sink file:/var/log/app.log --adopt-existing
              linger serve --listen 0.0.0.0:7070 --sink discard
              linger serve --listen 0.0.0.0:7070 --sink file:/var/log/shipped.log --tls-cert server.pem --tls-key server.key --tls-client-ca clients-ca.pem
              linger serve --listen 0.0.0.0:7070 --sink 'postgres://linger:secret@db:5432/logs?table=app_lines'
              linger serve --sink file:/var/log/linger/shipped.log --rotate-size 100MiB --keep 10 --compress
              linger serve --sink file:/var/log/linger/shipped.log --pid-file /run/linger-serve.pid   (logrotate: deploy/logrotate)

            TLS: --tls-cert and --tls-key (PEM) make every connection TLS 1.2 or later (1.3 preferred); a sender \
            that connects in plaintext is refused with the reason. --tls-client-ca also requires client \
            certificates, and a sender may only use a client id that is its certificate's CN or one of its SANs. \
            SIGHUP reloads the certificate and key: new connections use them, established ones stay up. Without \
            client certificates, --token-file can tie each token to the client ids it may use; SIGHUP reloads \
            that file too (an empty or unreadable one keeps the tokens loaded before).

            Rotating the output: logrotate's create mode renames the file, then `kill -HUP` makes the server \
            continue in a new one (committed data stays in the renamed file; the state log follows). Or built in: \
            --rotate-size / --rotate-every, --keep, --compress. copytruncate is refused: lines written between its \
            copy and its cut would be lost, so the server stops and says so.
            """
    )

    @Option(help: ArgumentHelp("Address to listen on, HOST:PORT (default: 127.0.0.1:7070).", valueName: "host:port"), transform: HostPort.parse)
    var listen: HostPort = HostPort(host: "127.0.0.1", port: 7070)

    @Option(help: ArgumentHelp("Where accepted messages go: stdout, file:PATH, postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME], or discard.", valueName: "sink"))
    var sink: String = "stdout"

    @Option(help: ArgumentHelp("With a file sink, when to fsync: batch (before every ack), interval:DURATION, or none.", valueName: "policy"))
    var fsync: String = "batch"

    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "Accept only clients presenting a token of this file: one per line, each optionally followed by the client ids it may use (web-1 web-2, batch-*).",
        valueName: "path"))
    var tokenFile: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Serve TLS with this PEM certificate (chain); plaintext clients are refused.", valueName: "pem"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "pem"))
    var tlsKey: String?

    @Option(name: .customLong("tls-client-ca"), help: ArgumentHelp(
        "Require client certificates signed by a CA in this PEM file; a client's id must be its certificate's CN or a SAN.",
        valueName: "pem"))
    var tlsClientCA: String?

    @Option(name: .customLong("max-connections"), parsing: .unconditional, help: ArgumentHelp(
        "Sessions at once. Senders beyond it wait in line by client id and are let in in turn: a free session goes to the "
            + "longest waiting, and a sender that has held its slot 5 s is asked to yield it to one waiting (its lines wait in its "
            + "outbox). Turned-away senders are logged every 30 s (default: 1024).", valueName: "count"))
    var maxConnections = 1024

    @Option(name: .customLong("max-pending"), parsing: .unconditional, help: ArgumentHelp(
        "Bytes received and not yet stored, over all connections, before every connection pauses reading until the sink "
            + "catches up (default: 256MiB). Bounds memory when the sink is slower than many senders.", valueName: "size"),
        transform: ByteSize.parse)
    var maxPending = ByteSize(bytes: 256 << 20)

    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: ArgumentHelp("Close a connection that sends nothing for this long, e.g. 500ms or 2m (default: 30s).", valueName: "duration"), transform: DurationArgument.parse)
    var idleTimeout = DurationArgument(.seconds(30))

    @Option(name: .customLong("close-deadline"), parsing: .unconditional, help: ArgumentHelp("After GOAWAY or ERROR, how long a client gets to close first before the server closes (default: 5s).", valueName: "duration"), transform: DurationArgument.parse)
    var closeDeadline = DurationArgument(.seconds(5))

    @Option(name: .customLong("shutdown-deadline"), parsing: .unconditional, help: ArgumentHelp(
        "How long a stop (SIGTERM, SIGINT) may take, whatever the sink is doing: clients are asked to close first, a failing "
            + "sink stops being retried, and one second past it the process exits even if the sink is stuck in the kernel. A "
            + "second signal exits at once. Nothing the sink did not store is acknowledged (default: 10s).", valueName: "duration"), transform: DurationArgument.parse)
    var shutdownDeadline = DurationArgument(.seconds(10))

    @Flag(name: .customLong("adopt-existing"), help: ArgumentHelp(
        "With a file sink: keep a non-empty file that has no state log as if linger had written it, and append after it "
            + "(by default such a file is refused, never truncated). Senders that shipped into it before resend from 0."))
    var adoptExisting = false

    @Option(name: .customLong("rotate-size"), parsing: .unconditional, help: ArgumentHelp("With a file sink: rotate the output once it holds this much (100MiB, 1GiB).", valueName: "size"), transform: ByteSize.parse)
    var rotateSize: ByteSize?

    @Option(name: .customLong("rotate-every"), parsing: .unconditional, help: ArgumentHelp("With a file sink: rotate the output after this long (1h, 1d).", valueName: "duration"), transform: DurationArgument.parse)
    var rotateEvery: DurationArgument?

    @Option(name: .customLong("keep"), parsing: .unconditional, help: ArgumentHelp("With --rotate-size/--rotate-every: rotated files kept (older are deleted).", valueName: "n"))
    var keep: Int?

    @Flag(help: "With --rotate-size/--rotate-every: gzip rotated files.")
    var compress = false

    @Option(name: .customLong("pid-file"), help: ArgumentHelp("Write the server's pid here (for logrotate's postrotate: kill -HUP $(cat FILE)).", valueName: "path"))
    var pidFile: String?

    @Flag(name: .customLong("abortive-close"), help: "Close connections with RST (SO_LINGER 0): no TIME_WAIT, unsent data lost. For experiments only.")
    var abortiveClose = false

    @Flag(help: "Log each connection event to stderr.")
    var verbose = false

    func validate() throws {
        guard sink == "stdout" || sink == "discard" || (sink.hasPrefix("file:") && sink.count > 5) || isPostgres else {
            throw ValidationError("--sink must be stdout, discard, file:PATH or postgres://USER:PASSWORD@HOST:PORT/DB, got '\(sink)'")
        }
        if isPostgres {
            do {
                _ = try PostgresSinkAddress(parsing: sink, environment: ProcessInfoEnvironment.current)
            } catch {
                throw ValidationError("--sink: \(error)")
            }
        }
        _ = try fsyncPolicy()
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCA != nil && tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        // A process holds a bounded number of fds (20,000 on many hosts); a million sessions is past any host.
        guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be from 1 to 1000000, got \(maxConnections)") }
        guard idleTimeout.milliseconds > 0 else { throw ValidationError("--idle-timeout must be more than 0") }
        let rotating = rotateSize != nil || rotateEvery != nil
        if (rotating || keep != nil || compress || adoptExisting) && !sink.hasPrefix("file:") {
            throw ValidationError("--rotate-size, --rotate-every, --keep, --compress and --adopt-existing need --sink file:PATH")
        }
        if (keep != nil || compress) && !rotating { throw ValidationError("--keep and --compress go with --rotate-size or --rotate-every") }
        if let keep, !(1...1_000_000).contains(keep) { throw ValidationError("--keep must be from 1 to 1000000, got \(keep)") }
        if let rotateEvery, rotateEvery.milliseconds < 1000 { throw ValidationError("--rotate-every must be at least 1s") }
    }

    private var tlsConfiguration: LinkServerTLS? {
        guard let tlsCert, let tlsKey else { return nil }
        return LinkServerTLS(certificatePath: tlsCert, keyPath: tlsKey, clientCAPath: tlsClientCA)
    }

    private var isPostgres: Bool { sink.hasPrefix("postgres://") || sink.hasPrefix("postgresql://") }

    func fsyncPolicy() throws -> FsyncPolicy {
        if fsync == "batch" { return .everyBatch }
        if fsync == "none" { return .none }
        if fsync.hasPrefix("interval:"), let interval = DurationArgument(argument: String(fsync.dropFirst(9))) {
            return .interval(interval.duration)
        }
        throw ValidationError("--fsync must be batch, none or interval:DURATION (e.g. interval:1s), got '\(fsync)'")
    }

    func run() async throws {
        if sink == "stdout" && StandardDescriptors.closedAtStart[1] {
            StandardOutput.note("standard output is closed, and the sink is stdout; give --sink file:PATH, or a reader for stdout")
            throw ExitCode(64)
        }
        let logger = makeLogger(label: "linger.serve", verbose: verbose)
        // Certificates and tokens first: a mistake there must not leave a sink opened (or files created).
        var tokens: [LinkToken] = []
        do {
            try tlsConfiguration?.check()
        } catch {
            StandardOutput.note("\(error)")
            throw ExitCode.failure
        }
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
        // The pid file before the sink: a path it cannot be written to must not leave an output file behind.
        if let pidFile {
            let text = Array("\(getpid())\n".utf8)
            let fd = open(pidFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                StandardOutput.note("cannot write the pid file \(pidFile): \(String(cString: strerror(errno)))")
                throw ExitCode.failure
            }
            _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        defer { if let pidFile { unlink(pidFile) } }
        let theSink: any LinkSink
        // What the server prints as its sink: the URL without its password.
        var shownSink = sink
        do {
            switch sink {
            case "stdout": theSink = StandardOutputSink()
            case "discard": theSink = DiscardSink()
            case _ where isPostgres:
                let address = try PostgresSinkAddress(parsing: sink, environment: ProcessInfoEnvironment.current)
                shownSink = address.description
                let waited = Mutex(false)
                // The server (and its stop handling) does not exist yet while the database is waited for, so a
                // stop here is handled here: nothing was accepted, so nothing is at stake.
                let pidFile = self.pidFile
                let stopWhileWaiting = Task {
                    for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                        Self.exitNow("\(signal) while waiting for PostgreSQL: exiting", pidFile: pidFile)
                    }
                }
                defer { stopWhileWaiting.cancel() }
                let postgres = try await PostgresSink.open(address, logger: logger) { problem in
                    waited.withLock { $0 = true }
                    StandardOutput.note("\(problem.message); waiting for it (SIGTERM stops)")
                }
                if waited.withLock({ $0 }) { StandardOutput.note("reached PostgreSQL at \(address.host):\(address.port)") }
                for note in postgres.openingNotes { StandardOutput.note(note) }
                theSink = postgres
            default:
                let rotation = OutputRotation(
                    maximumBytes: rotateSize?.bytes, interval: rotateEvery?.duration, keep: keep, compress: compress)
                let fileSink = try FileSink(
                    path: String(sink.dropFirst(5)), policy: try fsyncPolicy(), adoptExisting: adoptExisting, rotation: rotation)
                for note in fileSink.openingNotes { StandardOutput.note(note) }
                theSink = fileSink
            }
        } catch let error as LinkSinkError {
            StandardOutput.note(error.message)
            throw ExitCode.failure
        } catch let error as PostgresSinkError {
            StandardOutput.note(error.message)
            throw ExitCode.failure
        }
        // A reader that closes standard output must be an error we report, not a signal that kills us; and a
        // file over RLIMIT_FSIZE must be EFBIG (retried, like a full disk), not SIGXFSZ.
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        let server = LinkServer(
            configuration: LinkServerConfiguration(
                host: listen.host, port: listen.port, sink: theSink, tokens: tokens, tls: tlsConfiguration,
                maximumConnections: maxConnections,
                idleTimeout: idleTimeout.duration, closeDeadline: closeDeadline.duration,
                shutdownDeadline: shutdownDeadline.duration, pendingBudget: Int(clamping: maxPending.bytes), abortiveClose: abortiveClose),
            logger: logger)
        // SIGHUP reloads the TLS certificate and the token file (new connections get them; established ones
        // stay up) and reopens the sink's output (logrotate's create mode renamed it), as nginx and rsyslog do;
        // it must not be the default action, which ends the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let tokenFile = self.tokenFile
        let reopening = Task {
            for await _ in hangups {
                do {
                    if let note = try server.reloadTLS() { StandardOutput.note(note) }
                } catch {
                    StandardOutput.note("SIGHUP: \(error); still serving the certificate loaded before")
                }
                if let tokenFile {
                    do {
                        let tokens = try loadTokens(from: tokenFile)
                        guard !tokens.isEmpty else {
                            throw LinkError(.configuration, "\(tokenFile) holds no token")
                        }
                        try server.reloadTokens(tokens)
                        StandardOutput.note("reloaded \(tokens.count) token\(tokens.count == 1 ? "" : "s") from \(tokenFile)")
                    } catch {
                        StandardOutput.note("SIGHUP: \(error); still accepting the tokens loaded before")
                    }
                }
                do {
                    if let note = try await server.reopenSink() { StandardOutput.note(note) }
                } catch {
                    StandardOutput.note("SIGHUP: cannot reopen the output: \(error); still writing where it was")
                }
            }
        }
        defer { reopening.cancel() }
        // The server's own certificate, at start and daily: renewed before senders refuse it.
        let certificate = tlsConfiguration
        let expiry = Task {
            while let certificate, !Task.isCancelled {
                if let warning = certificate.expiryWarning() { StandardOutput.note(warning) }
                try? await Task.sleep(for: .seconds(86_400))
            }
        }
        defer { expiry.cancel() }
        // Stop means stop: the server's own stop fits in --shutdown-deadline (a failing sink stops retrying
        // there); a sink thread stuck in the kernel (a hung NFS write) cannot be interrupted, so one second
        // later the process exits without it. A second SIGTERM or SIGINT exits at once. Either way nothing the
        // sink did not store was acknowledged: the senders still hold it.
        let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let deadline = shutdownDeadline.duration
        let pidFile = self.pidFile
        let watchdog = Task {
            var seen = 0
            for await signal in stops {
                seen += 1
                if seen == 1 {
                    Task {
                        try? await Task.sleep(for: deadline + .seconds(1))
                        Self.exitNow("the sink did not finish within --shutdown-deadline (\(deadline.formattedSeconds)); exiting without it", pidFile: pidFile)
                    }
                } else {
                    Self.exitNow("\(signal) again: exiting now", pidFile: pidFile)
                }
            }
        }
        defer { watchdog.cancel() }
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycleLogger(logger)))
        async let announce: Void = {
            if let address = try? await server.listeningAddress() {
                let host = address.ipAddress.map { address.protocol == .inet6 ? "[\($0)]" : $0 } ?? "?"
                StandardOutput.note("listening on \(host):\(address.port ?? 0) (sink \(shownSink))")
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

extension Serve {
    /// Ends the process now, whatever is still running (a sink thread stuck in the kernel): what the sink did
    /// not store was never acknowledged, and senders resend it.
    static func exitNow(_ reason: String, pidFile: String?) -> Never {
        StandardOutput.note(reason + "; nothing the sink did not store was acknowledged (senders resend it)")
        if let pidFile { unlink(pidFile) }
        Glibc.exit(1)
    }
}

/// ServiceLifecycle's own debug lines name Swift types (`LingerLink.LinkServer`); --verbose promises
/// connection events, so the lifecycle logs only what a user acts on.
func lifecycleLogger(_ logger: Logger) -> Logger {
    var quieter = logger
    quieter.logLevel = max(logger.logLevel, .notice)
    return quieter
}

/// Logs to stderr; `info` and above, or everything with `--verbose`.
func makeLogger(label: String, verbose: Bool) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = verbose ? .debug : .warning
    return logger
}
