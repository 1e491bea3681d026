import ArgumentParser
import LingerProbe

/// `--source` values; mirrors ``SocketProbe/Source`` (a conformance on the library type would be public API).
enum SourceChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, netlink, proc

    var probeSource: SocketProbe.Source {
        switch self {
        case .auto: .auto
        case .netlink: .netlink
        case .proc: .proc
        }
    }
}

/// Where to read the socket table: which namespace, which kernel interface.
struct ProbeOptions: ParsableArguments {
    @Option(name: .customLong("netns"), help: ArgumentHelp(
        "Read the named network namespace (as `ss -N NAME`; see `ip netns list`). Needs root.",
        valueName: "name"))
    var namespace: String?

    @Option(help: ArgumentHelp(
        "Where to read sockets: netlink (sock_diag, as ss), proc (/proc/net/tcp, as netstat), or auto "
            + "(netlink, falling back to proc when refused).",
        valueName: "auto|netlink|proc"))
    var source: SourceChoice = .auto

    /// Enters the namespace (if any) and returns the probe. Call once, before any other probe work.
    func makeProbe() throws -> SocketProbe {
        if let namespace { try NetworkNamespace.enter(namespace) }
        return SocketProbe(source: source.probeSource)
    }
}
