import ArgumentParser
import LingerCore
import LingerProbe

/// `linger doctor`: the diagnosis, with an exit status scripts can act on.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Diagnose the TCP table: who leaks CLOSE_WAIT, which destination runs out of ports, and what to change.",
        discussion: """
            Exit status: 0 healthy, 1 warning, 2 critical, 3 the table could not be read (64 for bad arguments). \
            Rules and thresholds: docs/DOCTOR.md. --confirm SECONDS takes a second snapshot after that long and \
            reports which CLOSE_WAIT sockets (same inode) are still there: stuck, not passing through.
            JSON: {"status", "findings": [{"id", "severity", "summary", "evidence", "cause", "remedy"}], \
            "counts": {"total", "states"}, "takenAt", "source", "namespace", "attribution"}.
            """
    )

    @OptionGroup var probeOptions: ProbeOptions
    @OptionGroup var output: OutputOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Take a second snapshot after this many seconds to prove CLOSE_WAIT sockets are stuck.", valueName: "seconds"))
    var confirm: Double?

    func validate() throws {
        if let confirm, !(confirm > 0 && confirm <= 3600) {
            throw ValidationError("--confirm takes a number of seconds from 0 (exclusive) to 3600, got \(confirm)")
        }
    }

    func run() throws {
        let doctor = LingerCore.Doctor()
        let snapshot: Snapshot
        var earlier: Snapshot?
        do {
            let probe = try probeOptions.makeProbe()
            let owners: SocketProbe.OwnerLookup = .states(TCPStateSet([.closeWait, .finWait2, .listen, .synSent]), retransmitting: true)
            if let confirm {
                earlier = try probe.snapshot(owners: .none)
                StandardOutput.note("waiting \(confirm) s for a second snapshot to confirm…")  // stderr: JSON stays clean
                sleepSeconds(confirm)
            }
            snapshot = try probe.snapshot(owners: doctor.needsOwners ? owners : .none, tcpInfo: true, orphanedDescriptors: doctor.needsOwners)
        } catch let error as ProbeError {
            StandardOutput.note(error.message)
            throw ExitCode(3)
        }
        let diagnosis = doctor.diagnose(snapshot, earlier: earlier)
        let renderer = DiagnosisRenderer(diagnosis: diagnosis, snapshot: snapshot, namespace: probeOptions.namespace)
        StandardOutput.print(output.json ? renderer.json().text(pretty: true) : renderer.text())
        let code = diagnosis.status.exitCode
        if code != 0 { throw ExitCode(code) }
    }
}
