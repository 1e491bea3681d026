// MARK: - User API

/// What a rule looks at: the snapshot, and optionally an earlier one taken `--confirm` seconds before.
public struct DiagnosisContext: Sendable {
    public var snapshot: Snapshot
    /// A snapshot taken earlier, so a rule can tell stuck sockets from sockets passing through.
    public var earlier: Snapshot?
    public var thresholds: DoctorThresholds

    public init(snapshot: Snapshot, earlier: Snapshot? = nil, thresholds: DoctorThresholds = DoctorThresholds()) {
        self.snapshot = snapshot
        self.earlier = earlier
        self.thresholds = thresholds
    }

    /// Seconds between the earlier snapshot and this one, when there is an earlier one.
    public var confirmInterval: Double? { earlier.map { snapshot.takenAt - $0.takenAt } }
}

// MARK: - Rule SPI, implemented by the built-in rules

/// One diagnosis: reads a context, returns zero or more findings. Rules are pure functions of their
/// input, so each is tested with hand-made snapshots.
public protocol DiagnosisRule: Sendable {
    /// The id every finding of this rule carries.
    var id: String { get }
    /// Whether the rule needs process owners on CLOSE_WAIT/FIN_WAIT2/LISTEN sockets; the probe then
    /// scans `/proc/PID/fd`.
    var needsOwners: Bool { get }
    func evaluate(_ context: DiagnosisContext) -> [Finding]
}

/// Linux constants the rules reason with.
public enum LinuxTCP {
    /// `TCP_TIMEWAIT_LEN` in `include/net/tcp.h`: fixed, no sysctl changes it (FACTS §2.2).
    public static let timeWaitSeconds = 60
}

// MARK: - Shared evidence helpers

extension SocketRecord {
    /// The socket as evidence data: endpoints, queues, inode and holders.
    var evidenceJSON: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("local", .string(local.description)),
            ("remote", .string(remote.description)),
            ("recvQ", .number(recvQ)),
            ("sendQ", .number(sendQ)),
            ("inode", .number(inode)),
        ]
        if !owners.isEmpty {
            fields.append(("fds", .array(owners.map { .object([("pid", .number($0.pid)), ("fd", .number($0.fd))]) })))
        }
        return .object(fields)
    }

    var evidenceLine: String {
        var line = "\(local) -> \(remote)  recv-Q \(recvQ) send-Q \(sendQ)"
        if let owner = owners.first { line += "  fd \(owner.fd)" }
        if inode != 0 { line += "  inode \(inode)" }
        return line
    }
}

/// Who holds a group of sockets; `nil` pid means no owner could be found.
struct OwnerKey: Hashable, Comparable {
    var pid: Int32?
    var name: String?

    init(_ record: SocketRecord) {
        pid = record.owners.first?.pid
        name = record.owners.first?.name
    }

    var label: String {
        if let pid, let name { return "\(name) (pid \(pid))" }
        return "an unidentified process"
    }

    var json: [(String, JSONValue)] {
        [("process", name.map(JSONValue.string) ?? .null), ("pid", pid.map { .number($0) } ?? .null)]
    }

    static func < (lhs: OwnerKey, rhs: OwnerKey) -> Bool { (lhs.pid ?? -1) < (rhs.pid ?? -1) }
}

/// The most frequent values with their counts, most frequent first, for "remote peers" style evidence.
func topCounts<Key: Hashable>(_ keys: some Sequence<Key>, limit: Int, describe: (Key) -> String) -> [(String, Int)] {
    var counts = [Key: Int]()
    for key in keys { counts[key, default: 0] += 1 }
    return counts.map { (describe($0.key), $0.value) }
        .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        .prefix(limit).map { $0 }
}

func countsJSON(_ pairs: [(String, Int)], keyName: String) -> JSONValue {
    .array(pairs.map { .object([(keyName, .string($0.0)), ("count", .number($0.1))]) })
}

func countsText(_ pairs: [(String, Int)]) -> String {
    pairs.map { $0.1 == 1 ? $0.0 : "\($0.0) ×\($0.1)" }.joined(separator: ", ")
}

func percent(_ share: Double) -> String {
    let tenths = Int((share * 1000).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}
