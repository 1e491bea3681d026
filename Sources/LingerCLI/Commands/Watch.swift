import ArgumentParser
import LingerCore
import LingerProbe
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `linger watch`: the table over time, with leaks told apart from traffic.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch the TCP table over time: changes per state, stuck CLOSE_WAIT per process, TIME_WAIT per destination.",
        discussion: """
            Refreshes in place on a terminal (like top); with --plain, or when stdout is not a terminal, prints \
            one line per interval; with --json, one JSON object per interval (newline-delimited). A process is \
            reported as leaking when its oldest CLOSE_WAIT socket is older than --leak-age, or when its \
            CLOSE_WAIT count rose at each of the last 3 intervals. Ages come from the kernel where it can tell \
            (tcp_info's time since the last ACK arrived, which for a CLOSE_WAIT socket with no traffic since is \
            the FIN's arrival), so a socket stuck for hours shows hours from the first interval; otherwise from \
            when the watch first saw the socket (shown as ≥AGE; oldestAgeSource first-seen in JSON).
            JSON fields: takenAt, counts, deltas (null at first), closeWait [{pid, process, count, \
            oldestAgeSeconds, oldestAgeSource (kernel-last-ack | first-seen), growthPerMinute, leak, reason}], timeWait [{local, remote, remotePort, count, \
            portShare}], findings [{id, severity, summary}].
            """
    )

    @OptionGroup var probeOptions: ProbeOptions
    @OptionGroup var filterOptions: FilterOptions
    @OptionGroup var output: OutputOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds between snapshots.", valueName: "seconds"))
    var interval: Double = 2

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many seconds (default: until interrupted).", valueName: "seconds"))
    var duration: Double?

    @Option(name: .customLong("leak-age"), parsing: .unconditional, help: ArgumentHelp("Seconds a CLOSE_WAIT socket may stay before its process is called a leak.", valueName: "seconds"))
    var leakAge: Double = 60

    @Flag(help: "One line per interval instead of a refreshing screen.")
    var plain = false

    func validate() throws {
        guard interval >= 0.1 && interval <= 3600 else { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        // Both end up as milliseconds in an Int64; beyond 100 years (or infinite) they cannot be represented.
        if let duration, !(duration > 0 && duration <= DurationArgument.longestSeconds) {
            throw ValidationError("--duration must be more than 0 and at most 3153600000 seconds (100 years)")
        }
        guard leakAge > 0, leakAge <= DurationArgument.longestSeconds else {
            throw ValidationError("--leak-age must be more than 0 and at most 3153600000 seconds (100 years)")
        }
        if plain && output.json { throw ValidationError("--plain and --json are two output formats; give one") }
    }

    func run() throws {
        let filter = try filterOptions.makeFilter()
        let probe: SocketProbe
        do { probe = try probeOptions.makeProbe() } catch let error as ProbeError {
            StandardOutput.note(error.message)
            throw ExitCode(3)
        }
        var tracker = WatchTracker(leakAgeSeconds: leakAge)
        let live = !plain && !output.json && StandardOutput.isTerminal
        let start = ContinuousClock.now
        var first = true
        while true {
            if !first {
                if let duration, ContinuousClock.now - start + .milliseconds(Int64(interval * 1000)) > .milliseconds(Int64(duration * 1000) + 1) { break }
                sleepSeconds(interval)
            }
            first = false
            if let namespace = probeOptions.namespace, access("\(NetworkNamespace.directory)/\(namespace)", F_OK) != 0 {
                StandardOutput.note("network namespace '\(namespace)' is gone; stopping")
                throw ExitCode.failure
            }
            var snapshot: Snapshot
            do {
                snapshot = try probe.snapshot(
                    owners: .states(TCPStateSet([.closeWait, .listen, .finWait2, .synSent]), retransmitting: true),
                    tcpInfo: true, orphanedDescriptors: true)
            } catch let error as ProbeError {
                StandardOutput.note(error.message)
                throw ExitCode.failure
            }
            if filter.checksMoreThanStates || filter.states != .all { snapshot.records = snapshot.records.filter(filter.matches) }
            let report = tracker.update(snapshot)
            let renderer = WatchRenderer(report: report, interval: interval, namespace: probeOptions.namespace)
            if output.json {
                StandardOutput.print(renderer.json().text())
            } else if live {
                StandardOutput.write(Array(("\u{1B}[H\u{1B}[2J" + renderer.screen() + "\n").utf8))
            } else {
                StandardOutput.print(renderer.line())
            }
            if let duration, ContinuousClock.now - start >= .milliseconds(Int64(duration * 1000)) { break }
        }
    }
}
