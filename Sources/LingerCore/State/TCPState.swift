/// A TCP socket state, numbered exactly as the Linux kernel numbers it (`include/net/tcp_states.h`).
///
/// The raw values are the kernel's, so a value read from sock_diag or `/proc/net/tcp` maps without a table.
/// `newSynRecv` is a request socket the kernel keeps while a handshake completes; `ss` hides the name but the
/// number can appear in a dump, so it is kept rather than dropped as "unknown".
public enum TCPState: UInt8, CaseIterable, Sendable, Hashable, Comparable {
    case established = 1
    case synSent = 2
    case synRecv = 3
    case finWait1 = 4
    case finWait2 = 5
    case timeWait = 6
    case close = 7
    case closeWait = 8
    case lastAck = 9
    case listen = 10
    case closing = 11
    case newSynRecv = 12

    /// The kernel's own name, as `/proc/net/tcp` documentation and our JSON print it (`CLOSE_WAIT`).
    public var kernelName: String {
        switch self {
        case .established: "ESTABLISHED"
        case .synSent: "SYN_SENT"
        case .synRecv: "SYN_RECV"
        case .finWait1: "FIN_WAIT1"
        case .finWait2: "FIN_WAIT2"
        case .timeWait: "TIME_WAIT"
        case .close: "CLOSE"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .listen: "LISTEN"
        case .closing: "CLOSING"
        case .newSynRecv: "NEW_SYN_RECV"
        }
    }

    /// The short column label `ss` prints (`CLOSE-WAIT`, `ESTAB`), so a table reads like the tool users know.
    public var ssName: String {
        switch self {
        case .established: "ESTAB"
        case .synSent: "SYN-SENT"
        case .synRecv: "SYN-RECV"
        case .finWait1: "FIN-WAIT-1"
        case .finWait2: "FIN-WAIT-2"
        case .timeWait: "TIME-WAIT"
        case .close: "UNCONN"
        case .closeWait: "CLOSE-WAIT"
        case .lastAck: "LAST-ACK"
        case .listen: "LISTEN"
        case .closing: "CLOSING"
        case .newSynRecv: "NEW-SYN-RECV"
        }
    }

    /// Reads a state name the way people type it: `close-wait`, `CLOSE-WAIT`, `CLOSE_WAIT`, `closewait`,
    /// `Close_Wait`, and the `ss` spellings (`estab`, `fin-wait-1`, `syn-recv`, `unconn`).
    ///
    /// Returns `nil` for anything else; callers turn that into an error listing ``allNames``.
    public init?(name: String) {
        var key = ""
        for ch in name.unicodeScalars where ch != "-" && ch != "_" && ch != " " {
            key.unicodeScalars.append(ch.properties.lowercaseMapping.unicodeScalars.first ?? ch)
        }
        switch key {
        case "established", "estab": self = .established
        case "synsent": self = .synSent
        case "synrecv", "synreceived": self = .synRecv
        case "finwait1": self = .finWait1
        case "finwait2": self = .finWait2
        case "timewait": self = .timeWait
        case "close", "closed", "unconn": self = .close
        case "closewait": self = .closeWait
        case "lastack": self = .lastAck
        case "listen", "listening": self = .listen
        case "closing": self = .closing
        case "newsynrecv": self = .newSynRecv
        default: return nil
        }
    }

    /// Every state name in kernel spelling, for error messages and `--help`.
    public static var allNames: [String] { allCases.map(\.kernelName) }

    public static func < (lhs: TCPState, rhs: TCPState) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension TCPState: CustomStringConvertible {
    public var description: String { kernelName }
}
