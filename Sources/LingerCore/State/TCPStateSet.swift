/// A set of TCP states as the kernel's bit mask (`1 << state`), the form sock_diag's `idiag_states` takes.
///
/// Keeping the mask as the representation means a filter built from the command line is handed to the
/// kernel unchanged, so unwanted sockets are never copied to user space.
public struct TCPStateSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The set holding one state.
    public init(_ state: TCPState) { self.rawValue = 1 << UInt32(state.rawValue) }

    /// The set holding the given states.
    public init(_ states: some Sequence<TCPState>) {
        self.rawValue = states.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
    }

    /// Every state, including NEW_SYN_RECV (the mask node_exporter and `ss -a` use).
    public static let all = TCPStateSet(TCPState.allCases)

    /// `ss`'s `connected` (`SS_CONN` in `misc/ss.c`): every state except LISTEN, CLOSE, TIME_WAIT and
    /// SYN_RECV — the sockets that still have a live peer and a full socket behind them.
    public static let connected = all.subtracting(TCPStateSet([.listen, .close, .timeWait, .synRecv, .newSynRecv]))

    /// `ss`'s `synchronized`: connected states except SYN_SENT (the handshake finished).
    public static let synchronized = connected.subtracting(TCPStateSet(.synSent))

    /// `ss`'s `bucket`: states held by minisockets rather than full sockets (SYN_RECV and TIME_WAIT).
    public static let bucket = TCPStateSet([.synRecv, .timeWait, .newSynRecv])

    /// `ss`'s `big`: everything that is not a minisocket.
    public static let big = all.subtracting(bucket)

    /// Whether `state` is in the set.
    public func contains(_ state: TCPState) -> Bool { rawValue & (1 << UInt32(state.rawValue)) != 0 }

    /// The states in the set, in kernel order.
    public var states: [TCPState] { TCPState.allCases.filter(contains) }

    /// Reads a state name or one of `ss`'s group names (`connected`, `synchronized`, `bucket`, `big`, `all`).
    public init?(name: String) {
        switch name.lowercased() {
        case "all": self = .all
        case "connected": self = .connected
        case "synchronized": self = .synchronized
        case "bucket": self = .bucket
        case "big": self = .big
        default:
            guard let state = TCPState(name: name) else { return nil }
            self.init(state)
        }
    }

    /// The group names accepted by ``init(name:)`` besides state names.
    public static let groupNames = ["all", "connected", "synchronized", "bucket", "big"]
}
