/// Follows a namespace across snapshots: changes per state, how long each CLOSE_WAIT socket has been stuck
/// (tracked by inode), and which processes leak — something no single snapshot can tell.
///
/// A process is reported as leaking when its oldest CLOSE_WAIT socket is older than ``leakAgeSeconds``,
/// or when its CLOSE_WAIT count rose at every one of the last ``risingSamples`` intervals.
public struct WatchTracker: Sendable {
    public var leakAgeSeconds: Double
    public var risingSamples: Int
    /// How much history each process keeps (samples).
    public var historyLength: Int

    private var firstSeen: [UInt64: Double] = [:]
    private var history: [Int32: [(Double, Int)]] = [:]
    private var previousCounts: [TCPState: Int]?
    private let doctor: Doctor

    public init(leakAgeSeconds: Double = 60, risingSamples: Int = 3, historyLength: Int = 30, doctor: Doctor = Doctor()) {
        self.leakAgeSeconds = leakAgeSeconds
        self.risingSamples = risingSamples
        self.historyLength = historyLength
        self.doctor = doctor
    }

    /// Takes the next snapshot (with owners of CLOSE_WAIT sockets) and returns what changed.
    public mutating func update(_ snapshot: Snapshot) -> WatchReport {
        let now = snapshot.takenAt
        let counts = snapshot.countsByState
        let deltas = previousCounts.map { previous in
            Dictionary(uniqueKeysWithValues: TCPState.allCases.map { ($0, (counts[$0] ?? 0) - (previous[$0] ?? 0)) })
        }
        previousCounts = counts

        // Ages: the kernel's clock where the snapshot has tcp_info (time since the last ACK arrived: for a
        // CLOSE_WAIT socket with no traffic since, the FIN's arrival), else since this tracker first saw the
        // inode in CLOSE_WAIT. Both are lower bounds of the true age; the larger one is kept, with its source.
        var seenNow = Set<UInt64>()
        var byProcess: [Int32: (name: String, count: Int, oldest: Double, source: CloseWaitAgeSource)] = [:]
        var unowned = 0
        for record in snapshot.records where record.state == .closeWait {
            if record.inode != 0 {
                seenNow.insert(record.inode)
                if firstSeen[record.inode] == nil { firstSeen[record.inode] = now }
            }
            let watched = record.inode != 0 ? now - (firstSeen[record.inode] ?? now) : 0
            let kernel = record.info.map { Double($0.lastAckMilliseconds) / 1000 }
            let (age, source) = kernel.map { $0 >= watched ? ($0, CloseWaitAgeSource.kernelLastAck) : (watched, .firstSeen) } ?? (watched, .firstSeen)
            guard let owner = record.owners.first else { unowned += 1; continue }
            var entry = byProcess[owner.pid] ?? (owner.name, 0, 0, .firstSeen)
            entry.count += 1
            if age >= entry.oldest { (entry.oldest, entry.source) = (age, source) }
            byProcess[owner.pid] = entry
        }
        firstSeen = firstSeen.filter { seenNow.contains($0.key) }

        for pid in Set(history.keys).union(byProcess.keys) {
            var samples = history[pid] ?? []
            samples.append((now, byProcess[pid]?.count ?? 0))
            if samples.count > historyLength { samples.removeFirst(samples.count - historyLength) }
            history[pid] = samples.allSatisfy({ $0.1 == 0 }) ? nil : samples
        }

        let processes = byProcess.map { pid, entry -> ProcessCloseWait in
            let samples = history[pid] ?? []
            let recent = samples.suffix(risingSamples + 1).map(\.1)
            let rising = recent.count == risingSamples + 1 && zip(recent, recent.dropFirst()).allSatisfy { $0 < $1 }
            var growth = 0.0
            if let first = samples.first, let last = samples.last, last.0 > first.0 {
                growth = Double(last.1 - first.1) / (last.0 - first.0) * 60
            }
            let old = entry.oldest >= leakAgeSeconds
            let reason: String? =
                old && rising ? "stuck for \(Int(entry.oldest)) s and still rising"
                : old ? "oldest socket stuck for \(Int(entry.oldest)) s"
                : rising ? "count rose at each of the last \(risingSamples) intervals"
                : nil
            return ProcessCloseWait(
                pid: pid, name: entry.name, count: entry.count, oldestAgeSeconds: entry.oldest, oldestAgeSource: entry.source,
                growthPerMinute: growth, leakReason: reason)
        }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.pid < $1.pid }

        return WatchReport(
            takenAt: now, counts: counts, deltas: deltas, closeWaitByProcess: processes,
            unownedCloseWait: unowned, timeWaitByDestination: TimeWaitDestination.all(in: snapshot),
            findings: doctor.diagnose(snapshot).findings)
    }
}

/// What one interval of `linger watch` shows.
public struct WatchReport: Sendable {
    public var takenAt: Double
    public var counts: [TCPState: Int]
    /// Change since the previous interval (nil for the first).
    public var deltas: [TCPState: Int]?
    public var closeWaitByProcess: [ProcessCloseWait]
    /// CLOSE_WAIT sockets whose owner could not be read.
    public var unownedCloseWait: Int
    public var timeWaitByDestination: [TimeWaitDestination]
    public var findings: [Finding]

    /// Processes reported as leaking.
    public var leaks: [ProcessCloseWait] { closeWaitByProcess.filter { $0.leakReason != nil } }
}

/// Where a CLOSE_WAIT age came from.
public enum CloseWaitAgeSource: String, Sendable, Hashable {
    /// tcp_info's time since the last ACK arrived: the FIN's arrival when nothing came after it. Survives a
    /// restart of the watcher: a socket stuck for hours shows hours.
    case kernelLastAck = "kernel-last-ack"
    /// Since this watcher first saw the socket (by inode) in CLOSE_WAIT: where tcp_info is missing (`/proc`).
    case firstSeen = "first-seen"
}

/// One process's CLOSE_WAIT sockets over time.
public struct ProcessCloseWait: Sendable, Hashable {
    public var pid: Int32
    public var name: String
    public var count: Int
    /// How long its oldest CLOSE_WAIT socket has been in the state (a lower bound; see ``oldestAgeSource``).
    public var oldestAgeSeconds: Double
    /// Where that age came from.
    public var oldestAgeSource: CloseWaitAgeSource
    /// Change of its count per minute over the kept history.
    public var growthPerMinute: Double
    /// Why it counts as a leak; nil when it does not (yet).
    public var leakReason: String?
}

/// TIME_WAIT toward one destination, against the ephemeral ports it may use (FACTS §2.8).
public struct TimeWaitDestination: Sendable, Hashable {
    public var local: IPAddress
    public var remote: IPAddress
    public var remotePort: UInt16
    public var count: Int
    /// count ÷ usable ephemeral ports (nil when the range is unknown).
    public var portShare: Double?

    /// TIME_WAIT grouped by destination, largest first. Server-side TIME_WAIT (on a listening port) is left
    /// out: it holds no ephemeral ports.
    public static func all(in snapshot: Snapshot) -> [TimeWaitDestination] {
        let listeners = Set(snapshot.records.lazy.filter { $0.state == .listen }.map(\.local.port))
        var counts: [String: TimeWaitDestination] = [:]
        for record in snapshot.records where record.state == .timeWait && !listeners.contains(record.local.port) {
            let key = "\(record.local.address)|\(record.remote.address)|\(record.remote.port)"
            counts[key, default: TimeWaitDestination(local: record.local.address, remote: record.remote.address, remotePort: record.remote.port, count: 0)].count += 1
        }
        let usable = snapshot.sysctls.usableEphemeralPorts
        return counts.values.map { destination in
            var d = destination
            d.portShare = usable.map { $0 > 0 ? Double(d.count) / Double($0) : 0 }
            return d
        }.sorted { $0.count != $1.count ? $0.count > $1.count : "\($0.remote)" < "\($1.remote)" }
    }
}
