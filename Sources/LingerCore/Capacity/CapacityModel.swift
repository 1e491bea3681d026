/// The TIME_WAIT and ephemeral-port arithmetic of FACTS §2.8, as a value: what a connection rate costs
/// and how far it can go before `connect()` fails with EADDRNOTAVAIL.
///
/// A connection closed first by this host holds its 4-tuple in TIME_WAIT for the TIME_WAIT length; an
/// ephemeral port is unique per (source address, destination address, destination port), so each
/// destination has its own budget of `usable ports × source addresses` per TIME_WAIT length.
public struct CapacityInput: Sendable, Hashable {
    /// Requests per second the application makes (all destinations together).
    public var requestsPerSecond: Double
    /// Requests carried by one connection (1 = a new connection per request; more = keep-alive or a pool).
    public var requestsPerConnection: Double
    /// Seconds a socket stays in TIME_WAIT (60 on Linux, fixed).
    public var timeWaitSeconds: Double
    /// Ephemeral ports connect() may use, after `ip_local_reserved_ports`.
    public var usablePorts: Int
    /// Local addresses the connections are spread over.
    public var sourceAddresses: Int
    /// Distinct (destination address, destination port) pairs the connections are spread over evenly.
    public var destinations: Int
    /// Whether this host closes first (the client, usually). When the peer closes first, TIME_WAIT lands
    /// there and costs this host no ports.
    public var thisHostClosesFirst: Bool
    /// Whether `tcp_tw_reuse` applies (1, or 2 on loopback, with timestamps): a TIME_WAIT port can be taken
    /// over once its last timestamp is `reuseDelaySeconds` old.
    public var timeWaitReuse: Bool
    /// `tcp_tw_reuse_delay`: 1 s by default.
    public var reuseDelaySeconds: Double
    /// Kernel memory per TIME_WAIT socket (the `tw_sock_TCP` slab object; 256 bytes on Linux 6.x x86_64).
    public var bytesPerTimeWaitSocket: Int

    public init(
        requestsPerSecond: Double, requestsPerConnection: Double = 1, timeWaitSeconds: Double = 60,
        usablePorts: Int = 28232, sourceAddresses: Int = 1, destinations: Int = 1, thisHostClosesFirst: Bool = true,
        timeWaitReuse: Bool = false, reuseDelaySeconds: Double = 1, bytesPerTimeWaitSocket: Int = 256
    ) {
        self.requestsPerSecond = requestsPerSecond
        self.requestsPerConnection = requestsPerConnection
        self.timeWaitSeconds = timeWaitSeconds
        self.usablePorts = usablePorts
        self.sourceAddresses = sourceAddresses
        self.destinations = destinations
        self.thisHostClosesFirst = thisHostClosesFirst
        self.timeWaitReuse = timeWaitReuse
        self.reuseDelaySeconds = reuseDelaySeconds
        self.bytesPerTimeWaitSocket = bytesPerTimeWaitSocket
    }
}

/// What ``CapacityInput`` implies.
public struct CapacityReport: Sendable, Hashable {
    public var input: CapacityInput
    /// New connections per second (requests ÷ requests per connection).
    public var connectionsPerSecond: Double
    /// TIME_WAIT sockets on this host in steady state (0 when the peer closes first).
    public var timeWaitSockets: Double
    /// Kernel memory those take.
    public var timeWaitMemoryBytes: Double
    /// The most new connections per second one destination sustains before ports run out.
    public var maxNewConnectionsPerSecondPerDestination: Double
    /// The same over every destination.
    public var maxNewConnectionsPerSecond: Double
    /// Capacity ÷ demand: above 1 the rate fits, below 1 connect() will fail with EADDRNOTAVAIL.
    public var headroom: Double
    /// Over capacity: the most TIME_WAIT sockets the ports allow (one per port, source address and
    /// destination), which ``timeWaitSockets`` is capped at; nil when the rate fits.
    public var portLimit: Double?
    /// Over capacity: seconds after a steady rate starts until connect() begins to fail (the ports are all
    /// held); nil when the rate fits.
    public var connectFailsAfterSeconds: Double?

    public init(_ input: CapacityInput) {
        self.input = input
        connectionsPerSecond = input.requestsPerSecond / max(input.requestsPerConnection, 1)
        let holdSeconds = input.timeWaitReuse ? min(input.reuseDelaySeconds, input.timeWaitSeconds) : input.timeWaitSeconds
        timeWaitSockets = input.thisHostClosesFirst ? connectionsPerSecond * input.timeWaitSeconds : 0
        timeWaitMemoryBytes = timeWaitSockets * Double(input.bytesPerTimeWaitSocket)
        if input.thisHostClosesFirst {
            maxNewConnectionsPerSecondPerDestination = Double(input.usablePorts) * Double(input.sourceAddresses) / max(holdSeconds, 0.001)
        } else {
            // Ports free the moment the connection ends: only concurrency limits them, not the close rate.
            maxNewConnectionsPerSecondPerDestination = .infinity
        }
        maxNewConnectionsPerSecond = maxNewConnectionsPerSecondPerDestination * Double(input.destinations)
        headroom = connectionsPerSecond > 0 ? maxNewConnectionsPerSecond / connectionsPerSecond : .infinity
        if headroom < 1 && input.thisHostClosesFirst {
            // Ports are unique per (source address, destination): no more sockets can exist than that.
            let ports = Double(input.usablePorts) * Double(input.sourceAddresses) * Double(input.destinations)
            portLimit = ports
            connectFailsAfterSeconds = ports / connectionsPerSecond
            timeWaitSockets = min(timeWaitSockets, ports)
            timeWaitMemoryBytes = timeWaitSockets * Double(input.bytesPerTimeWaitSocket)
        }
    }

    /// Predicted TIME_WAIT population `seconds` after a steady rate starts (it grows linearly, then levels
    /// off at the TIME_WAIT length): what the lab compares its measurements with.
    public func timeWaitSockets(after seconds: Double) -> Double {
        input.thisHostClosesFirst ? connectionsPerSecond * min(seconds, input.timeWaitSeconds) : 0
    }
}
