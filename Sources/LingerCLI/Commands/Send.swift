import ArgumentParser
import LingerLink
import LingerSources
import Logging
import UnixSignals
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `linger send`: ship lines to a `linger serve`, exactly once, surviving disconnects, restarts and rotation.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send lines (files, globs or stdin) to `linger serve`; exit 0 only when every line read is acknowledged.",
        discussion: """
            One line is one message.

            Files (--file, repeatable, globs allowed) are shipped as streams known by their content, not by \
            their path: a sender restarted with the same --client-id proves, for each file, that its first lines \
            are exactly what the server holds of a stream (by the server's digest of that stream) and sends only \
            the rest; it finds the unshipped rest of rotated copies beside each file and never ships a content \
            twice. Copies are recognised by name (PATH.1, PATH-YYYYMMDD, STEM.1.EXT, STEM-YYYYMMDD.EXT, \
            PATH.YYYY-MM-DD as Python rotates, 0.log.YYYYMMDD-HHMMSS as the kubelet does, each also .gz; \
            --rotated-glob for others), then by content: a .gz of a file already shipped, copytruncate's copy, a \
            symlink or a hard link is one content, and a .gz is not read while gzip still writes it. At a start, \
            copies older than the oldest one the server knows are history from before this sender, left alone.

            With --follow every file is read by its descriptor, like tail -F and more: directories are watched \
            with inotify (a new file is read at once, a rescan every 5 s is the fallback), a renamed file is read \
            as long as it is in view and again when a late writer adds to it, a file deleted or renamed out of \
            view is read until it has been quiet for --rotate-wait, and copytruncate's cut is noticed before \
            every read, the lines it took coming from the copy. A partial last line is never sent while \
            following; without --follow it is sent only once the file has been quiet for --rotate-wait. Lines \
            longer than --max-line-bytes are cut to it, with a warning. --verbose says which stream each file is.

            Stdin is one stream numbered by line position: piping the same input again with the same \
            --client-id continues where the server stands. Lines read from a pipe cannot be read twice, so \
            --spool DIR keeps them on disk until the server acknowledges them; a sender restarted with the \
            same --spool delivers what is there, with or without new input. --spool-sync append (the default) \
            fsyncs each append before its lines are sent, so they survive a power loss; --spool-sync none only \
            writes them (they survive the sender crashing or being killed, not the machine losing power), at \
            about 1.7 times the throughput.

            TLS: --tls-ca PEM (or --tls, to trust the system's CAs) connects with TLS 1.2 or later and checks that the \
            server's certificate holds the HOST connected to (or --tls-server-name); --tls-cert and --tls-key \
            present a client certificate, whose CN or a SAN must be the --client-id. An untrusted or expired \
            certificate, a wrong name, or a server that does not speak TLS ends the sender with exit status 2 and \
            the reason. Replaced certificate files are read again at the next reconnect.

            Several servers (linger send A B) are tried in turn. One that refuses in the handshake (a token or \
            version it does not accept, a certificate that does not verify, no linger server there) is passed \
            over for the next, as during a token rotation across collectors; the sender stops with exit status \
            2 only when every server has refused since the last session began.

            A peer that is no linger server stops the sender with exit status 2 and what it saw: bytes that are \
            no link frame (an HTTP or SSH server) at once; a peer that accepts and closes without a word, or says \
            nothing for a third of --idle-timeout (10 s by default), after three connections in a row, within a \
            second or within 30 s. A linger server always says why it turns a sender away (a connection limit, a \
            shutdown), so this never stops a sender that once had a session with that server: a proxy whose \
            collectors restart is waited for.

            Only one sender may use a client id at a time: when another takes it over, this one stops with \
            exit status 2 rather than fight back. SIGINT and SIGTERM stop reading, wait briefly for the \
            acknowledgements in flight, and say how many lines were left unacknowledged.
            Exit status: 0 every line read was acknowledged; 1 failed, or stopped with lines unacknowledged; \
            2 the server refused the client for good (a wrong token, a message it cannot take, another sender \
            took over the client id, a TLS certificate or name that does not verify), or what answered is no \
            linger server (another service on that port); with several servers, every one refused. 64 a usage \
            error (a bad flag, a closed stdin).
            Examples:
              linger send 127.0.0.1:7070 --file app.log --client-id web-1 --progress
              linger send logs.internal:7070 --file '/var/log/app/*.log' --follow --client-id web-1
              linger send logs.internal:7070 --file app.log --client-id web-1 --tls-ca ca.pem --tls-cert web-1.pem --tls-key web-1.key
              journalctl -f | linger send logs.internal:7070 --client-id web-1 --spool /var/lib/linger/spool
            """
    )

    @Argument(help: ArgumentHelp("The server, HOST:PORT. More servers can follow; they are tried in turn.", valueName: "host:port"), transform: HostPort.parse)
    var servers: [HostPort]

    @Option(name: .customLong("file"), help: ArgumentHelp("Read lines from this file or glob instead of stdin (repeatable).", valueName: "path"))
    var files: [String] = []

    @Flag(help: "Keep following the files through rotation (like tail -F) until interrupted.")
    var follow = false

    @Option(name: .customLong("client-id"), help: ArgumentHelp("Stable id of this sender (1-128 of A-Z a-z 0-9 . _ : -).", valueName: "id"))
    var clientID: String?

    @Option(name: .customLong("client-id-file"), help: ArgumentHelp("Read the id from this file, creating it with a new random id if missing.", valueName: "path"))
    var clientIDFile: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("Present the first token in this file.", valueName: "path"))
    var tokenFile: String?

    @Flag(help: "Connect with TLS, trusting the system's CAs (implied by any other --tls option).")
    var tls = false

    @Option(name: .customLong("tls-ca"), help: ArgumentHelp("Trust only the CAs in this PEM file for the server's certificate.", valueName: "pem"))
    var tlsCA: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Present this PEM client certificate (its CN or a SAN must be the client id).", valueName: "pem"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "pem"))
    var tlsKey: String?

    @Option(name: .customLong("tls-server-name"), help: ArgumentHelp("The name the server's certificate must hold (default: the HOST connected to).", valueName: "name"))
    var tlsServerName: String?

    @Option(name: .customLong("spool"), help: ArgumentHelp("Keep stdin's lines in this directory until acknowledged (crash-safe).", valueName: "dir"))
    var spool: String?

    @Option(name: .customLong("spool-sync"), help: ArgumentHelp("When spooled lines reach the disk: append (fsync before sending) or none (written only; survives a crash, not a power loss).", valueName: "policy"))
    var spoolSync: SpoolSyncChoice = .append

    @Option(name: .customLong("spool-max-bytes"), parsing: .unconditional, help: ArgumentHelp("Refuse to spool more than this many bytes.", valueName: "bytes"))
    var spoolMaxBytes: Int64 = 1 << 30

    @Option(name: .customLong("max-line-bytes"), parsing: .unconditional, help: ArgumentHelp("Cut longer lines to this many bytes, with a warning.", valueName: "bytes"))
    var maxLineBytes = 16 << 20

    @Option(name: .customLong("rotate-wait"), parsing: .unconditional, help: ArgumentHelp(
        "How long a file must be quiet: a followed file deleted or renamed out of view is read until it has not grown for this "
            + "long; a last line without its newline is sent (without --follow) once the file has not changed for this long "
            + "(default: 1s).", valueName: "duration"), transform: DurationArgument.parse)
    var rotateWait = DurationArgument(.seconds(1))

    @Option(name: .customLong("rotated-glob"), help: ArgumentHelp(
        "Rotated copies linger does not recognise by name (repeatable), e.g. '/var/log/app/archive/app.*'; they are read like "
            + "PATH.1 (see the discussion).", valueName: "glob"))
    var rotatedGlobs: [String] = []

    @Flag(help: "Show sent, acknowledged, in flight, reconnects and rate on stderr (every 5 s when stderr is not a terminal).")
    var progress = false

    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: ArgumentHelp("Replace a connection that receives nothing for this long (default: 30s).", valueName: "duration"), transform: DurationArgument.parse)
    var idleTimeout = DurationArgument(.seconds(30))

    @Option(name: .customLong("backoff-initial"), parsing: .unconditional, help: ArgumentHelp("First reconnect delay, jittered (default: 100ms).", valueName: "duration"), transform: DurationArgument.parse)
    var backoffInitial = DurationArgument(.milliseconds(100))

    @Option(name: .customLong("backoff-max"), parsing: .unconditional, help: ArgumentHelp("Longest reconnect delay (default: 10s).", valueName: "duration"), transform: DurationArgument.parse)
    var backoffMax = DurationArgument(.seconds(10))

    @Option(name: .customLong("give-up-after"), parsing: .unconditional, help: ArgumentHelp(
        "Stop with exit status 1 when no connection has worked for this long (default: retry forever).", valueName: "duration"),
        transform: DurationArgument.parse)
    var giveUpAfter: DurationArgument?

    @Option(name: .customLong("outbox-messages"), parsing: .unconditional, help: "Unacknowledged messages held before reading more input.")
    var outboxMessages = 1_000_000

    // Measured (docs/BENCHMARKS.md): 65536 messages cut a 64 B sender's peak RSS into a file sink from 124 to
    // 34 MiB, and its discard throughput by about a sixth, so the defaults stay where they are.
    @Option(name: .customLong("outbox-bytes"), parsing: .unconditional, help: ArgumentHelp(
        "Unacknowledged bytes, frames included, held before reading more input (default: 256MiB). With "
            + "--outbox-messages, this is the sender's memory bound; lower both on a small machine, at some cost in "
            + "throughput. A single line larger than it is still sent, alone.", valueName: "size"), transform: ByteSize.parse)
    var outboxBytes = ByteSize(bytes: 256 << 20)

    @Flag(help: "Log connection events to stderr.")
    var verbose = false

    func validate() throws {
        if servers.isEmpty { throw ValidationError("name at least one server as HOST:PORT") }
        if let clientID, !LinkClientID.isValid(clientID) {
            throw ValidationError("client id '\(clientID)' must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        if clientID != nil && clientIDFile != nil { throw ValidationError("give --client-id or --client-id-file, not both") }
        if follow && files.isEmpty { throw ValidationError("--follow needs --file (stdin is read to its end anyway)") }
        if spool != nil && !files.isEmpty { throw ValidationError("--spool is for stdin; files can be read again and need none") }
        if backoffMax.milliseconds < backoffInitial.milliseconds { throw ValidationError("--backoff-max must be at least --backoff-initial") }
        if let giveUpAfter, giveUpAfter.milliseconds < 1 { throw ValidationError("--give-up-after must be more than 0") }
        // 0 would replace every connection before its WELCOME: a reconnect storm that never sends a line.
        if idleTimeout.milliseconds < 1 { throw ValidationError("--idle-timeout must be more than 0") }
        if backoffInitial.milliseconds < 1 { throw ValidationError("--backoff-initial must be at least 1ms") }
        if !(1...1_000_000_000).contains(outboxMessages) { throw ValidationError("--outbox-messages must be from 1 to 1000000000, got \(outboxMessages)") }
        if maxLineBytes < 1 || maxLineBytes > 16 << 20 { throw ValidationError("--max-line-bytes must be 1 to 16777216 (16 MiB, the link's limit), got \(maxLineBytes)") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if spoolMaxBytes < 1 << 20 { throw ValidationError("--spool-max-bytes must be at least 1048576 (1 MiB)") }
    }

    private var tlsConfiguration: LinkClientTLS? {
        guard tls || tlsCA != nil || tlsCert != nil || tlsServerName != nil else { return nil }
        return LinkClientTLS(caPath: tlsCA, certificatePath: tlsCert, keyPath: tlsKey, serverName: tlsServerName)
    }

    func run() async throws {
        if files.isEmpty && StandardDescriptors.closedAtStart[0] {
            StandardOutput.note("standard input is closed; pipe lines in, or give --file")
            throw ExitCode(64)
        }
        let logger = makeLogger(label: "linger.send", verbose: verbose)
        let id: String
        let token: String
        do {
            if let clientID { id = clientID }
            else if let clientIDFile { id = try LinkClientID.loadOrCreate(at: clientIDFile) }
            else { id = LinkClientID.generate() }
            token = try tokenFile.map { try loadTokens(from: $0).first?.secret ?? "" } ?? ""
            if let tokenFile, token.isEmpty { throw ValidationError("\(tokenFile) holds no token; write one per line") }
            try tlsConfiguration?.check()
        } catch {
            StandardOutput.note("\(error)")
            throw ExitCode(64)
        }
        let client = LinkClient(
            configuration: LinkClientConfiguration(
                endpoints: servers.map { .init(host: $0.host, port: $0.port) }, clientID: id, token: token, tls: tlsConfiguration,
                outboxMessages: outboxMessages, outboxBytes: Int(clamping: outboxBytes.bytes), idleTimeout: idleTimeout.duration,
                backoff: ReconnectBackoff(initial: backoffInitial.duration, maximum: backoffMax.duration),
                giveUpAfter: giveUpAfter?.duration, onConnectionTrouble: ConnectionWarnings().callback()),
            logger: logger)
        signal(SIGPIPE, SIG_IGN)
        let io = SourceIO(threads: 3)
        let input: any ShippedInput
        if !files.isEmpty {
            input = FileShipper(
                patterns: files, client: client, io: io,
                options: FileInputOptions(
                    follow: follow, rotateWait: rotateWait.duration, maximumLineBytes: maxLineBytes, rotatedGlobs: rotatedGlobs))
        } else if let spool {
            input = SpooledStandardInput(
                directory: spool, maximumBytes: spoolMaxBytes, sync: spoolSync.policy, client: client, io: io, maximumLineBytes: maxLineBytes)
        } else {
            input = StandardInput(client: client, io: io, maximumLineBytes: maxLineBytes)
        }
        let outcome = await Shipment(client: client, input: input, progress: progress ? ProgressReporter(client: client) : nil, report: Self.say(verbose: verbose)).run()
        await io.shutdown()
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
        case .interrupted(let left):
            // Stopped by a signal: what was read is accounted for, what was not read yet is not (a user reading
            // "every line was acknowledged" would take it for the whole input).
            StandardOutput.note(
                left == 0
                    ? "stopped before the end of the input; every line read until then was acknowledged"
                    : "stopped with \(left) lines unacknowledged")
            if left > 0 { throw ExitCode.failure }
        }
    }
}

extension Send {
    /// Warnings and notices from the sources, one line each on stderr.
    static func say(verbose: Bool) -> @Sendable (SourceEvent) -> Void {
        { event in say(event, verbose: verbose) }
    }

    static func say(_ event: SourceEvent, verbose: Bool) {
        switch event {
        case .lineCut(let path, let line, let bytes, let limit):
            StandardOutput.note("warning: \(path) line \(line) has \(bytes) bytes; sent cut to \(limit) (--max-line-bytes)")
        case .rotated(let path):
            if verbose { StandardOutput.note("\(path) was rotated; the old file is read to its end") }
        case .truncated(let path):
            StandardOutput.note("\(path) was truncated (copytruncate); its new content is shipped as a new stream")
        case .notTheSameContent(let path, let stream):
            StandardOutput.note("\(path) begins like stream \(stream) but differs from what the server holds; shipping it as new content")
        case .spoolFull(let directory, let bytes, let limit):
            StandardOutput.note("the spool \(directory) is full (\(bytes) of \(limit) bytes); reading waits for the server to acknowledge")
        case .unfinishedCompressedFile(let path):
            StandardOutput.note("\(path) is a gzip file that is not finished (being compressed now?); it is read when it is complete")
        case .resumed(let path, let stream, let skipped):
            if verbose { StandardOutput.note("\(path) continues stream \(stream) after its \(skipped) lines on the server") }
        case .started(let path, let stream):
            if verbose { StandardOutput.note("\(path) is new content: stream \(stream)") }
        case .alreadyShipped(let path):
            if verbose { StandardOutput.note("\(path) holds nothing the server lacks (a copy of what was shipped)") }
        case .history(let path):
            if verbose { StandardOutput.note("\(path) is a rotated copy from before this sender shipped the log; left alone") }
        }
    }
}

/// `--spool-sync` values; mirrors ``Spool/FsyncPolicy``.
enum SpoolSyncChoice: String, ExpressibleByArgument, CaseIterable {
    case append, none

    var policy: Spool.FsyncPolicy {
        switch self {
        case .append: .everyAppend
        case .none: .none
        }
    }
}
