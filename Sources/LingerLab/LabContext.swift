public import LingerCore
import LingerProbe
@preconcurrency import Glibc

/// What a scenario works with: a private network namespace, peers started inside it, and the inspector
/// looking into it. Created and torn down by ``LabRunner``.
public final class LabContext {
    /// The namespace's name (`linger-lab-PID-N`).
    public let namespace: String
    let executable: String
    let progress: (String) -> Void
    private let probe: SocketProbe
    private var processes: [LabProcess] = []
    private let started = monotonicSeconds()

    init(namespace: String, executable: String, progress: @escaping (String) -> Void) throws {
        self.namespace = namespace
        self.executable = executable
        self.progress = progress
        // The lab's own thread joins the namespace, so every snapshot reads it (the peers are started with
        // `ip netns exec` and land there too).
        try NetworkNamespace.enter(namespace)
        probe = SocketProbe(source: .netlink)
    }

    /// Seconds since the scenario started.
    public var elapsed: Double { monotonicSeconds() - started }

    /// Starts a lab peer (`linger lab-peer ARGS`) inside the namespace (or `in` another one the context
    /// made) and waits for its "ready" line.
    func peer(_ arguments: [String], in other: String? = nil) throws -> (LabProcess, String) {
        let process = try LabProcess(["/usr/bin/env", "ip", "netns", "exec", other ?? namespace, executable, "lab-peer"] + arguments)
        processes.append(process)
        let ready = try process.expectLine("ready")
        return (process, ready)
    }

    /// The namespace's socket table, with owners of the given states.
    func snapshot(owners: TCPStateSet = []) throws -> Snapshot {
        try probe.snapshot(owners: owners.rawValue == 0 ? .none : .states(owners))
    }

    /// Sets a sysctl for this namespace (`net.ipv4.tcp_fin_timeout`).
    func sysctl(_ key: String, _ value: String) throws {
        let path = "/proc/sys/" + key.split(separator: ".").joined(separator: "/")
        let fd = open(path, O_WRONLY | O_TRUNC)
        guard fd >= 0 else { throw LabError("cannot set \(key): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw LabError("cannot set \(key) to \(value)") }
    }

    /// Starts any program inside namespace `name` (HAProxy, for one), tracked and stopped like a peer.
    func program(_ arguments: [String], in name: String) throws -> LabProcess {
        let process = try LabProcess(["/usr/bin/env", "ip", "netns", "exec", name] + arguments)
        processes.append(process)
        return process
    }

    /// A second namespace, `NAME-b`, joined to the lab's by a veth pair: the lab side is 10.77.0.1/24 (plus
    /// `extraLabAddresses`), the far side 10.77.0.2/24. Traffic between them crosses a real link, not loopback
    /// (where tcp_tw_reuse=2 already applies). The runner deletes it with the lab's namespace.
    func makeFarNamespace(extraLabAddresses: [String] = []) throws -> String {
        let far = namespace + "-b"
        try LabRunner.ip(["netns", "add", far])
        try LabRunner.ip(["-n", far, "link", "set", "lo", "up"])
        try LabRunner.ip(["-n", namespace, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1", "netns", far])
        try LabRunner.ip(["-n", namespace, "addr", "add", "10.77.0.1/24", "dev", "lab0"])
        for address in extraLabAddresses { try LabRunner.ip(["-n", namespace, "addr", "add", address + "/24", "dev", "lab0"]) }
        try LabRunner.ip(["-n", far, "addr", "add", "10.77.0.2/24", "dev", "lab1"])
        try LabRunner.ip(["-n", namespace, "link", "set", "lab0", "up"])
        try LabRunner.ip(["-n", far, "link", "set", "lab1", "up"])
        return far
    }

    /// Counts sockets in another namespace with `linger sockets --netns` (the inspector, as a user runs it).
    func count(in name: String, state: String, filter: [String] = []) throws -> Int {
        let process = try LabProcess([executable, "sockets", "--netns", name, "--state", state, "--summary", "--json"] + filter)
        var text = ""
        while let line = try process.readLine(timeout: 10) { text += line }
        process.finish()
        guard let range = text.firstRange(of: "\"total\": ") ?? text.firstRange(of: "\"total\":") else { throw LabError("cannot count sockets in \(name)") }
        return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// Stops every peer this context started.
    func stopPeers() {
        for process in processes { process.signal(SIGTERM) }
        for process in processes { process.finish(timeout: 3) }
        processes.removeAll()
    }
}

/// `key=value` fields of a peer's report line.
func fields(_ line: String) -> [String: String] {
    var result: [String: String] = [:]
    for part in line.split(separator: " ") {
        if let eq = part.firstIndex(of: "=") { result[String(part[..<eq])] = String(part[part.index(after: eq)...]) }
    }
    return result
}
