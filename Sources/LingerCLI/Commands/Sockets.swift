import ArgumentParser
import LingerCore
import LingerProbe

/// `linger sockets`: the kernel's TCP table, filtered, with owners on request.
struct Sockets: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sockets",
        abstract: "List TCP sockets (as ss -tan), with owners, filters, counts and JSON.",
        discussion: """
            Reads every state by default (like `ss -tan`). Examples:
              linger sockets --state close-wait -p           who holds CLOSE_WAIT sockets
              linger sockets --summary -p                     counts per state and per process
              linger sockets --remote-port 5432 --json        sockets to PostgreSQL as JSON
              linger sockets --netns blue --state listen      listeners in namespace blue
              linger sockets -i --state established           rtt, cwnd, retransmits, last ACK per connection
            JSON: {"takenAt", "source", "sockets": [{"state", "local": {"address", "port"}, "remote", "recvQ", \
            "sendQ", "inode", "uid", "cookie", "timer": {"name", "expiresMs", "retransmits"} | null, \
            "processes": [{"pid", "name", "fd"}] (only with -p or a process filter: absent, not empty, when owners were not looked up), "info" (-i): {"rttUs", "rttVarUs", "rtoUs", "backoff", "cwnd", \
            "retransmits", "totalRetransmits", "unacked", "lastSendMs", "lastReceiveMs", "lastAckMs", "bytesAcked", \
            "bytesReceived", "deliveryRateBytesPerSecond", "memory": {"receiveQueued", "receiveBuffer", "sendQueued", \
            "sendBuffer", "drops"}} | null}]}. With --summary: {"total", "states": {every state, zeros \
            included}, "processes": [{"pid", "name", "total", "states"}]} (-p only).
            """
    )

    @OptionGroup var probeOptions: ProbeOptions
    @OptionGroup var filterOptions: FilterOptions
    @OptionGroup var output: OutputOptions

    @Flag(name: [.customShort("p"), .customLong("processes")], help: "Show the processes holding each socket (reads /proc/PID/fd; root sees all).")
    var processes = false

    @Flag(name: [.customShort("i"), .customLong("info")], help: ArgumentHelp(
        "Show tcp_info and memory under each socket, as ss -i (rtt, rto, backoff, cwnd, retransmits, unacked, last send/receive/ack, bytes, delivery rate, skmem).",
        discussion: "Netlink only: /proc/net/tcp has no tcp_info."))
    var info = false

    @Flag(help: "Print counts by state (and by process with -p) instead of the sockets.")
    var summary = false

    func run() throws {
        let filter = try filterOptions.makeFilter()
        let probe: SocketProbe
        do { probe = try probeOptions.makeProbe() } catch let error as ProbeError {
            // 3, as for every command: the table (or its namespace) could not be read.
            StandardOutput.note(error.message)
            throw ExitCode(3)
        }
        let wantOwners = processes || filter.needsOwners
        if info && probe.source == .proc { throw ValidationError("-i needs netlink: /proc/net/tcp has no tcp_info (drop --source proc)") }
        let snapshot = try probe.snapshot(states: filter.states, owners: wantOwners ? .all : .none, kernelContext: false, tcpInfo: info)
        let records = filter.checksMoreThanStates ? snapshot.records.filter(filter.matches) : snapshot.records
        if let coverage = snapshot.attribution, coverage.processesDenied > 0 {
            StandardOutput.note(
                "could not read the fds of \(coverage.processesDenied) of \(coverage.processesDenied + coverage.processesScanned) "
                    + "processes (other users'; run as root to see them): their sockets show no owner")
        }
        if snapshot.source == .proc && records.contains(where: { $0.state == .listen }) {
            StandardOutput.note("read from /proc/net/tcp, which has no listen backlog: LISTEN Send-Q shows 0 where netlink (ss) shows the backlog")
        }
        if summary {
            let renderer = SummaryRenderer(byProcess: processes)
            if output.json {
                StandardOutput.print(renderer.json(records).text(pretty: true))
            } else {
                StandardOutput.print(renderer.text(records))
            }
            return
        }
        let renderer = SocketTableRenderer(showOwners: wantOwners, showInfo: info)
        if output.json { renderer.json(records, snapshot: snapshot) } else { renderer.text(records) }
    }
}
