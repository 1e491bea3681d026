import ArgumentParser
import LingerCore

/// The socket filters shared by `sockets` and `doctor`.
struct FilterOptions: ParsableArguments {
    @Option(name: .customLong("state"), help: ArgumentHelp(
        "Keep sockets in this state (repeatable): a state such as close-wait or TIME_WAIT, or one of ss's "
            + "groups connected, synchronized, bucket, big, all.",
        valueName: "state"))
    var states: [String] = []

    @Option(name: .customLong("local-port"), help: ArgumentHelp("Keep sockets whose local port is PORT or in LOW-HIGH (repeatable).", valueName: "port"))
    var localPorts: [String] = []

    @Option(name: .customLong("remote-port"), help: ArgumentHelp("Keep sockets whose remote port is PORT or in LOW-HIGH (repeatable).", valueName: "port"))
    var remotePorts: [String] = []

    @Option(name: .customLong("address"), help: ArgumentHelp(
        "Keep sockets with either end in this CIDR range, e.g. 10.0.0.0/8, ::1 or 192.168.1.7 (repeatable). "
            + "IPv4 ranges also match v4-mapped IPv6 addresses.",
        valueName: "cidr"))
    var addresses: [String] = []

    @Option(name: .customLong("pid"), help: ArgumentHelp("Keep sockets held by this process id (repeatable; implies owner lookup).", valueName: "pid"))
    var pids: [Int32] = []

    @Option(name: .customLong("process"), help: ArgumentHelp("Keep sockets held by a process with this command name, as in /proc/PID/comm (repeatable; implies owner lookup).", valueName: "name"))
    var processNames: [String] = []

    func validate() throws {
        _ = try makeFilter()
    }

    /// The filter, or a ValidationError naming the bad value and what would be accepted.
    func makeFilter() throws -> SocketFilter {
        var filter = SocketFilter()
        if !states.isEmpty {
            var set = TCPStateSet()
            for name in states {
                guard let parsed = TCPStateSet(name: name) else {
                    throw ValidationError(
                        "unknown state '\(name)'; use one of \(TCPState.allNames.joined(separator: ", ")) "
                            + "(any case, - or _ or none between words) or a group: \(TCPStateSet.groupNames.joined(separator: ", "))")
                }
                set.formUnion(parsed)
            }
            filter.states = set
        }
        filter.localPorts = try localPorts.map { try Self.port($0, option: "--local-port") }
        filter.remotePorts = try remotePorts.map { try Self.port($0, option: "--remote-port") }
        filter.addresses = try addresses.map {
            guard let range = AddressRange($0) else {
                throw ValidationError("'\($0)' is not an address or CIDR range; use e.g. 10.0.0.0/8, 127.0.0.1, ::1 or fe80::/10")
            }
            return range
        }
        for pid in pids where pid <= 0 { throw ValidationError("'\(pid)' is not a process id; use a positive number") }
        filter.pids = Set(pids)
        filter.processNames = Set(processNames)
        return filter
    }

    private static func port(_ text: String, option: String) throws -> PortRange {
        guard let range = PortRange(text) else {
            throw ValidationError("'\(text)' is not a port for \(option); use a number from 1 to 65535 or a range LOW-HIGH")
        }
        return range
    }
}

/// `--json` for every command.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false
}
