import ArgumentParser
import LingerCore
import LingerProbe

/// `linger capacity`: what a connection rate costs in TIME_WAIT and ports, and how much headroom is left.
struct Capacity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capacity",
        abstract: "Compute the TIME_WAIT population, its memory and the port headroom for a connection rate.",
        discussion: """
            Uses this machine's ephemeral port range and Linux's fixed 60 s TIME_WAIT unless told otherwise. \
            The model (docs/FACTS.md §2.8): TIME_WAIT sockets = new connections/s × TIME_WAIT length on the host that \
            closes first; one destination sustains (usable ports × source addresses) ÷ TIME_WAIT length new \
            connections per second. Examples:
              linger capacity --rate 1000
              linger capacity --rate 5000 --requests-per-connection 100        a pool reusing connections
              linger capacity --rate 2000 --destinations 4 --source-addresses 2 --json
            JSON: {"timeWaitSockets", "timeWaitMemoryBytes", "maxNewConnectionsPerSecond" (per destination), \
            "maxNewConnectionsPerSecondAllDestinations", "headroom", "connectionsPerSecond", "inputs": {...}}.
            """
    )

    // Unconditional parsing: `--rate -5` is a value to refuse with a reason, not a missing value.
    @Option(parsing: .unconditional, help: ArgumentHelp("Requests per second, all destinations together.", valueName: "per-second"))
    var rate: Double

    @Option(name: .customLong("requests-per-connection"), parsing: .unconditional, help: "Requests each connection carries (1 = a new connection per request).")
    var requestsPerConnection: Double = 1

    @Option(name: .customLong("time-wait"), parsing: .unconditional, help: ArgumentHelp("TIME_WAIT length in seconds (default: this machine's; 60 on Linux).", valueName: "seconds"))
    var timeWait: Double?

    @Option(name: .customLong("port-range"), help: ArgumentHelp("Ephemeral port range LOW-HIGH (default: this machine's, less reserved ports).", valueName: "low-high"))
    var portRange: String?

    @Option(name: .customLong("source-addresses"), parsing: .unconditional, help: "Local addresses the connections are spread over.")
    var sourceAddresses = 1

    @Option(parsing: .unconditional, help: "Destination address:port pairs the connections are spread over evenly (overrides the next two).")
    var destinations: Int?

    @Option(name: .customLong("destination-addresses"), parsing: .unconditional, help: "Destination addresses the connections are spread over.")
    var destinationAddresses = 1

    @Option(name: .customLong("destination-ports"), parsing: .unconditional, help: "Destination ports per address the connections are spread over.")
    var destinationPorts = 1

    @Flag(help: "Connections are persistent (pooled, keep-alive): no new connection per request, so no TIME_WAIT build-up.")
    var persistent = false

    private var destinationCount: Int { destinations ?? destinationAddresses * destinationPorts }

    @Option(help: ArgumentHelp("Which side closes first: client (this host; TIME_WAIT here) or server.", valueName: "client|server"))
    var closer = "client"

    @Flag(name: .customLong("tw-reuse"), help: "Assume tcp_tw_reuse applies (outgoing connections, timestamps on).")
    var twReuse = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of requests per second, got \(rate)") }
        // A million new connections per second per host is already past what a kernel accepts; far beyond
        // that the numbers only mislead.
        guard rate <= 1e9 else { throw ValidationError("--rate \(rate) is not a rate a host can reach; give at most 1000000000 requests per second") }
        guard requestsPerConnection >= 1, requestsPerConnection <= 1e12 else {
            throw ValidationError("--requests-per-connection must be from 1 to 1000000000000")
        }
        if let timeWait, !(timeWait > 0 && timeWait <= DurationArgument.longestSeconds) {
            throw ValidationError("--time-wait must be more than 0 and at most 3153600000 seconds (100 years)")
        }
        if let portRange, parsedRange(portRange) == nil {
            throw ValidationError("--port-range must be LOW-HIGH with 1 ≤ LOW ≤ HIGH ≤ 65535, got '\(portRange)'")
        }
        // Their product with 65,535 ports must stay a countable number of connections; a million of each is
        // already more addresses than any host holds.
        let counts = [sourceAddresses, destinations ?? 1, destinationAddresses, destinationPorts]
        guard counts.allSatisfy({ (1...1_000_000).contains($0) }) else {
            throw ValidationError("--source-addresses, --destinations, --destination-addresses and --destination-ports must be from 1 to 1000000")
        }
        guard closer == "client" || closer == "server" else { throw ValidationError("--closer must be client or server, got '\(closer)'") }
    }

    private func parsedRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 1, parts[0] <= parts[1], parts[1] <= 65535 else { return nil }
        return parts[0]...parts[1]
    }

    func run() throws {
        let sysctls = SocketProbe().sysctls()
        let usable: Int
        let rangeSource: String
        if let portRange, let range = parsedRange(portRange) {
            usable = range.count
            rangeSource = "\(range.lowerBound)-\(range.upperBound) (given)"
        } else if let range = sysctls.localPortRange, let machineUsable = sysctls.usableEphemeralPorts {
            usable = machineUsable
            rangeSource = "\(range.lowerBound)-\(range.upperBound) (this machine" + (sysctls.reservedPortCount > 0 ? ", \(sysctls.reservedPortCount) reserved)" : ")")
        } else {
            usable = 28232
            rangeSource = "32768-60999 (Linux default; this machine's could not be read)"
        }
        let slab = SocketProbe().timeWaitSocketBytes()
        let input = CapacityInput(
            requestsPerSecond: rate, requestsPerConnection: persistent ? .infinity : requestsPerConnection,
            timeWaitSeconds: timeWait ?? Double(LinuxTCP.timeWaitSeconds), usablePorts: usable,
            sourceAddresses: sourceAddresses, destinations: destinationCount, thisHostClosesFirst: closer == "client",
            timeWaitReuse: twReuse, bytesPerTimeWaitSocket: slab ?? 256)
        let report = CapacityReport(input)
        if output.json {
            StandardOutput.print(json(report, rangeSource: rangeSource, slabMeasured: slab != nil).text(pretty: true))
        } else {
            StandardOutput.print(text(report, rangeSource: rangeSource, slabMeasured: slab != nil))
        }
    }

    private func number(_ value: Double) -> JSONValue {
        value.isFinite ? .double((value * 10).rounded() / 10) : .null
    }

    private func json(_ r: CapacityReport, rangeSource: String, slabMeasured: Bool) -> JSONValue {
        .object([
            ("timeWaitSockets", number(r.timeWaitSockets)),
            ("timeWaitMemoryBytes", number(r.timeWaitMemoryBytes)),
            ("maxNewConnectionsPerSecond", number(r.maxNewConnectionsPerSecondPerDestination)),
            ("maxNewConnectionsPerSecondAllDestinations", number(r.maxNewConnectionsPerSecond)),
            ("headroom", r.headroom.isFinite ? .double((r.headroom * 1000).rounded() / 1000) : .null),
            ("portLimit", r.portLimit.map(number) ?? .null),
            ("connectFailsAfterSeconds", r.connectFailsAfterSeconds.map(number) ?? .null),
            ("connectionsPerSecond", number(r.connectionsPerSecond)),
            ("inputs", .object([
                ("requestsPerSecond", .double(r.input.requestsPerSecond)),
                ("requestsPerConnection", r.input.requestsPerConnection.isFinite ? .double(r.input.requestsPerConnection) : .string("persistent")),
                ("timeWaitSeconds", .double(r.input.timeWaitSeconds)),
                ("usablePorts", .number(r.input.usablePorts)),
                ("portRange", .string(rangeSource)),
                ("sourceAddresses", .number(r.input.sourceAddresses)),
                ("destinations", .number(r.input.destinations)),
                ("closer", .string(r.input.thisHostClosesFirst ? "client" : "server")),
                ("timeWaitReuse", .bool(r.input.timeWaitReuse)),
                ("bytesPerTimeWaitSocket", .number(r.input.bytesPerTimeWaitSocket)),
                ("bytesPerTimeWaitSocketSource", .string(slabMeasured ? "/proc/slabinfo tw_sock_TCP" : "assumed (256, Linux 6.x x86_64)")),
            ])),
        ])
    }

    private func text(_ r: CapacityReport, rangeSource: String, slabMeasured: Bool) -> String {
        func grouped(_ v: Double) -> String {
            guard v.isFinite else { return "unlimited by TIME_WAIT" }
            let n = Int(v.rounded())
            let s = String(n)
            var out = ""
            for (i, c) in s.reversed().enumerated() {
                if i > 0 && i % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return String(out.reversed())
        }
        let i = r.input
        let holder = i.thisHostClosesFirst ? "this host (the client) closes first" : "the server closes first"
        var lines = [
            "Inputs: \(grouped(i.requestsPerSecond)) requests/s, "
                + (i.requestsPerConnection.isFinite ? "\(grouped(i.requestsPerConnection)) per connection" : "persistent connections")
                + " → \(grouped(r.connectionsPerSecond)) new connections/s; "
                + "TIME_WAIT \(grouped(i.timeWaitSeconds)) s; ephemeral ports \(rangeSource), \(grouped(Double(i.usablePorts))) usable; "
                + "\(i.sourceAddresses) source address(es); \(i.destinations) destination(s); \(holder)"
                + (i.timeWaitReuse ? "; tcp_tw_reuse applies" : ""),
            "",
            row("TIME_WAIT sockets here:", grouped(r.timeWaitSockets),
                r.portLimit != nil ? "at most: one per usable port (and source address and destination); connect() fails from there"
                    : i.thisHostClosesFirst ? "new connections/s × TIME_WAIT length" : "they sit on the server"),
            row("Kernel memory for them:", bytes(r.timeWaitMemoryBytes),
                "\(i.bytesPerTimeWaitSocket) B each, \(slabMeasured ? "tw_sock_TCP slab on this machine" : "assumed")"),
            // A sustainable maximum rounds down: 470.5/s means 470.
            row("Max new connections/s per destination:", grouped(r.maxNewConnectionsPerSecondPerDestination.rounded(.down)),
                i.thisHostClosesFirst ? "\(grouped(Double(i.usablePorts * i.sourceAddresses))) ports ÷ \(grouped(i.timeWaitReuse ? i.reuseDelaySeconds : i.timeWaitSeconds)) s" : nil),
            row("Max new connections/s, all destinations:", grouped(r.maxNewConnectionsPerSecond.rounded(.down)), nil),
            row("Headroom:", r.headroom.isFinite ? format2(r.headroom) + "×" : "unlimited", nil),
        ]
        if let failsAfter = r.connectFailsAfterSeconds, let limit = r.portLimit {
            lines.append(row("connect() fails from about:", "\(grouped(failsAfter.rounded())) s",
                             "at most \(grouped(limit)) sockets: the ports run out at this rate"))
        }
        if r.headroom < 1 {
            lines.append("")
            lines.append("Over capacity: connect() will fail with EADDRNOTAVAIL (\"Cannot assign requested address\"). What lifts the ceiling: "
                + "reuse connections (--requests-per-connection), more destination ports or addresses, more source addresses, "
                + "tcp_tw_reuse=1 for outgoing connections, or letting the server close first.")
        } else if r.headroom < 2 {
            lines.append("")
            lines.append("Less than 2× headroom: past half the range, every connect() scans busy ports first (CPU and latency rise before failures).")
        }
        return lines.joined(separator: "\n")
    }

    /// "14.65 MiB", "1.20 GiB": the unit that keeps the number short.
    private func bytes(_ value: Double) -> String {
        value >= 1_073_741_824 ? "\(format2(value / 1_073_741_824)) GiB" : "\(format2(value / 1_048_576)) MiB"
    }

    /// One aligned line: the label in a fixed column, the value, and a note in parentheses.
    private func row(_ label: String, _ value: String, _ note: String?) -> String {
        label.padding(41) + value + (note.map { "   (\($0))" } ?? "")
    }
    private func format2(_ v: Double) -> String {
        let hundredths = Int((v * 100).rounded())
        return "\(hundredths / 100).\(String(hundredths % 100).leftPadding(2).replacingSpaces())"
    }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(map { $0 == " " ? "0" : $0 }) }
}
