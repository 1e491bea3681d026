/// Which sockets a listing or a diagnosis looks at.
///
/// The state set is handed to the kernel (sock_diag filters by state before copying anything); the rest is
/// checked per record. Every condition given must hold; within one condition any value may match
/// (`--state close-wait --state time-wait` means either state).
public struct SocketFilter: Sendable, Hashable {
    public var states: TCPStateSet
    /// Local ports to keep; empty keeps all.
    public var localPorts: [PortRange]
    /// Remote ports to keep; empty keeps all.
    public var remotePorts: [PortRange]
    /// Address ranges either end may fall in; empty keeps all.
    public var addresses: [AddressRange]
    /// Keep sockets held by one of these pids; empty keeps all. Needs owners.
    public var pids: Set<Int32>
    /// Keep sockets held by a process with one of these command names; empty keeps all. Needs owners.
    public var processNames: Set<String>

    public init(
        states: TCPStateSet = .all, localPorts: [PortRange] = [], remotePorts: [PortRange] = [],
        addresses: [AddressRange] = [], pids: Set<Int32> = [], processNames: Set<String> = []
    ) {
        self.states = states
        self.localPorts = localPorts
        self.remotePorts = remotePorts
        self.addresses = addresses
        self.pids = pids
        self.processNames = processNames
    }

    /// Whether anything besides the state set must be checked per record (the state set alone is applied
    /// by the probe while reading, so such a filter needs no second pass).
    public var checksMoreThanStates: Bool {
        !localPorts.isEmpty || !remotePorts.isEmpty || !addresses.isEmpty || needsOwners
    }

    /// Whether the filter can only be evaluated once owners are known.
    public var needsOwners: Bool { !pids.isEmpty || !processNames.isEmpty }

    /// Whether `record` passes every condition.
    public func matches(_ record: SocketRecord) -> Bool {
        guard states.contains(record.state) else { return false }
        if !localPorts.isEmpty && !localPorts.contains(where: { $0.contains(record.local.port) }) { return false }
        if !remotePorts.isEmpty && !remotePorts.contains(where: { $0.contains(record.remote.port) }) { return false }
        if !addresses.isEmpty
            && !addresses.contains(where: { $0.contains(record.local.address) || $0.contains(record.remote.address) })
        {
            return false
        }
        if !pids.isEmpty && !record.owners.contains(where: { pids.contains($0.pid) }) { return false }
        if !processNames.isEmpty && !record.owners.contains(where: { processNames.contains($0.name) }) {
            return false
        }
        return true
    }
}

/// A single port or an inclusive range, as typed on the command line: `5000` or `5000-5010`.
public struct PortRange: Sendable, Hashable {
    public let lower: UInt16
    public let upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16? = nil) {
        self.lower = lower
        self.upper = upper ?? lower
    }

    /// Parses `PORT` or `LOW-HIGH` (1–65535, low ≤ high); `nil` when malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let low = UInt16(parts[0]), low > 0 else { return nil }
        let high: UInt16
        if parts.count == 2 {
            guard let value = UInt16(parts[1]), value >= low else { return nil }
            high = value
        } else {
            high = low
        }
        self.init(low, high)
    }

    public func contains(_ port: UInt16) -> Bool { port >= lower && port <= upper }
}
