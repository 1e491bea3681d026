/// A system other than this one, for `linger explain STATE --os`.
public enum OperatingSystem: String, Sendable, CaseIterable {
    case linux, macos, freebsd, windows

    public var displayName: String {
        switch self {
        case .linux: "Linux"
        case .macos: "macOS"
        case .freebsd: "FreeBSD"
        case .windows: "Windows"
        }
    }
}

/// What another system does with a TCP state, with the source of every claim (docs/FACTS.md §3). Where no
/// fact was checked, it says so instead of guessing: the doctor and its explanations must never say
/// anything false. Linux is not here: `StateExplanation` reads it live from this machine.
public struct OtherSystemFacts: Sendable {
    public let state: TCPState
    public let system: OperatingSystem
    /// What the system does, one statement per line.
    public let facts: [String]
    /// Where each statement comes from.
    public let sources: [String]

    public init(_ state: TCPState, on system: OperatingSystem) {
        self.state = state
        self.system = system
        var facts: [String] = []
        var sources: [String] = []
        switch (state, system) {
        case (.timeWait, .macos):
            facts = [
                "TIME_WAIT lasts 2 × net.inet.tcp.msl: with TCPTV_MSL = 15 s, 30 seconds (Linux: 60 s, fixed).",
                "Ephemeral ports come from net.inet.ip.portrange.first/last (49152–65535 by default), so a destination holds "
                    + "16,384 ports ÷ 30 s ≈ 546 new connections/s from one source address.",
                "See the table with netstat -s -p tcp and netstat -an.",
            ]
            sources = ["apple-oss-distributions/xnu bsd/netinet/tcp_timer.h (TCPTV_MSL), add_to_time_wait(tp, 2*tcp_msl)"]
        case (.timeWait, .freebsd):
            facts = [
                "TIME_WAIT lasts 2 × MSL with TCPTV_MSL = 30 s: 60 seconds (sysctl net.inet.tcp.msl).",
                "Since FreeBSD 14.0, net.inet.tcp.nolocaltimewait is on by default: connections to a local peer get no TIME_WAIT.",
                "In older releases compressed TIME_WAIT entries are capped by net.inet.tcp.maxtcptw.",
                "Ephemeral ports come from net.inet.ip.portrange.first/last; sockstat(1) maps sockets to processes.",
            ]
            sources = ["FreeBSD sys/netinet/tcp_timer.h (TCPTV_MSL)", "FreeBSD 14.0 release notes, commit 92b3e07229ba (nolocaltimewait)"]
        case (.timeWait, .windows):
            facts = [
                "TIME_WAIT lasts TcpTimedWaitDelay (REG_DWORD under HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters): "
                    + "30–300 s, documented default 0xF0 = 240 s (2 × an MSL of 120 s); one measurement on Server 2019 saw about 120 s.",
                "Ephemeral ports: 49152–65535 (16,384) since Vista/Server 2008; see or change them with netsh int ipv4 show/set dynamicport tcp.",
                "Port exhaustion shows as Event ID 4227 (\"selected local endpoint was recently used\") and 4231 (allocating an "
                    + "ephemeral port failed); netstat -anoq also shows BOUND ports, which exhaust the range too.",
                "List with Get-NetTCPConnection grouped by State and OwningProcess, or GetExtendedTcpTable (TCP_TABLE_OWNER_PID_ALL).",
            ]
            sources = [
                "Microsoft, \"TcpTimedWaitDelay\" (TechNet); MicrosoftDocs/windows-itpro-docs troubleshoot-tcpip-port-exhaust.md (\"4 minutes (default)\")",
                "KB 929851 (dynamic port range)", "oven-sh/bun PR #33898 (about 120 s measured on Server 2019)",
            ]
        case (.finWait2, .freebsd):
            facts = [
                "FIN_WAIT_2 is bounded by net.inet.tcp.finwait2_timeout, and net.inet.tcp.fast_finwait2_recycle recycles closed "
                    + "FIN_WAIT_2 connections early (see tcp(4) for their defaults on your release).",
            ]
            sources = ["FreeBSD tcp(4): finwait2_timeout, fast_finwait2_recycle"]
        case (.closeWait, _):
            facts = [
                "As on Linux, TCP gives CLOSE_WAIT no timer: the socket stays until the application closes it. A leak looks the "
                    + "same everywhere: the count per process only grows.",
            ]
            sources = ["RFC 9293 §3.3.2 (CLOSE-WAIT waits for the user's CLOSE)"]
        default:
            break
        }
        if facts.isEmpty {
            facts = ["Linger has no checked facts about \(state.kernelName) on \(system.displayName): the state machine is RFC 9293's, "
                + "but which timers end the state, and their settings, differ by system. `linger explain \(state.kernelName.lowercased())` "
                + "describes Linux, measured on this machine."]
            sources = ["RFC 9293"]
        }
        if system == .windows {
            facts.append("Windows numbers states differently (MIB_TCP_STATE: 1 CLOSED … 11 TIME_WAIT, 12 DELETE_TCB).")
        }
        self.facts = facts
        self.sources = sources
    }

    public var text: String {
        var lines = ["\(state.kernelName) on \(system.displayName)"]
        lines += facts.map { "  " + $0 }
        lines.append("  sources: " + sources.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    public var json: JSONValue {
        .object([
            ("state", .string(state.kernelName)), ("os", .string(system.rawValue)),
            ("facts", .array(facts.map(JSONValue.string))), ("sources", .array(sources.map(JSONValue.string))),
        ])
    }
}
