#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import LingerCore

/// The peer's host vanishes (its link goes down) while two clients write to it: a naive one with no timeouts,
/// and a careful one with TCP_USER_TIMEOUT and keepalive. How long until each, and the doctor, notice?
public struct HalfOpenScenario: LabScenario {
    public let name = "half-open"
    public let summary = "a peer whose link goes down: a naive writer waits out tcp_retries2, TCP_USER_TIMEOUT notices in seconds"
    public let claim = "When the peer's host vanishes, a client writing to it without timeouts keeps an ESTABLISHED connection "
        + "while the kernel retransmits with backoff until tcp_retries2 (about 15 minutes by default); with "
        + "TCP_USER_TIMEOUT the write fails with ETIMEDOUT once data has waited that long; linger doctor names the naive "
        + "client (unreachable-peer) within seconds."
    public let source = "tcp(7): tcp_retries2 and TCP_USER_TIMEOUT; RFC 5482 (the TCP User Timeout option); RFC 9293 §3.8.3."
    public init() {}

    static let userTimeoutMilliseconds = 3000

    public func run(in lab: LabContext, quick: Bool) throws -> LabResult {
        let window = quick ? 8.0 : 30.0
        let far = try lab.makeFarNamespace()
        _ = try lab.peer(["server", "--port", "7401", "--host", "10.77.0.2"], in: far)
        let (naive, naiveReady) = try lab.peer(["half-open-client", "--host", "10.77.0.2", "--port", "7401"])
        let (careful, carefulReady) = try lab.peer([
            "half-open-client", "--host", "10.77.0.2", "--port", "7401", "--user-timeout-ms", "\(Self.userTimeoutMilliseconds)",
        ])
        let naivePort = UInt16(fields(naiveReady)["port"] ?? "") ?? 0
        let carefulPort = UInt16(fields(carefulReady)["port"] ?? "") ?? 0
        try LabInterrupt.sleep(0.5)
        lab.progress("half-open: both clients write to 10.77.0.2 every 100 ms; taking the peer's link down, watching \(Int(window)) s")
        try LabRunner.ip(["-n", far, "link", "set", "lab1", "down"])
        let downAt = realtimeMilliseconds()
        let start = lab.elapsed
        let doctor = Doctor(rules: [UnreachablePeer()])
        var doctorFoundAfter: Double?
        var series: [String: LabSeries] = [:]
        try lab.sample(every: 0.25, for: window, into: &series) { snapshot in
            func retransmissions(_ port: UInt16) -> Double {
                Double(snapshot.records.first { $0.local.port == port && $0.remote.port == 7401 }?.timer.map { $0.kind == .retransmit ? $0.retransmits : 0 } ?? 0)
            }
            if doctorFoundAfter == nil, doctor.diagnose(snapshot).findings.contains(where: { $0.id == "unreachable-peer" }) {
                doctorFoundAfter = lab.elapsed - start
            }
            return ["naive: retransmissions": retransmissions(naivePort), "TCP_USER_TIMEOUT: retransmissions": retransmissions(carefulPort)]
        }
        let last = try lab.snapshot()
        let naiveState = last.records.first { $0.local.port == naivePort && $0.remote.port == 7401 }
        let naiveRetransmits = naiveState?.timer?.retransmits ?? 0
        let detectedLine = try? careful.expectLine("detected", timeout: 1)
        let carefulDetected = detectedLine.map { fields($0) }
        let carefulAfter = carefulDetected.flatMap { Int64($0["at"] ?? "") }.map { Double($0 - downAt) / 1000 }
        let naiveDetected = (try? naive.expectLine("detected", timeout: 0.2)) != nil
        let retries2 = last.sysctls.retries2 ?? 15
        let limit = Double(Self.userTimeoutMilliseconds) / 1000
        let passed = naiveState?.state == .established && !naiveDetected && naiveRetransmits >= 3
            && (carefulAfter.map { $0 >= limit - 0.5 && $0 <= limit + 3 } ?? false)
            && (doctorFoundAfter.map { $0 <= 10 } ?? false)
        func seconds(_ value: Double?) -> JSONValue { value.map(number) ?? .null }
        return LabResult(
            variants: [
                LabVariant("naive", [
                    ("stateAfterWindow", .string(naiveState?.state.kernelName ?? "gone")), ("retransmissions", number(Int(naiveRetransmits))),
                    ("detectedWithinWindow", .bool(naiveDetected)), ("windowSeconds", number(window)), ("tcpRetries2", number(retries2)),
                    ("doctorFoundAfterSeconds", seconds(doctorFoundAfter)),
                ]),
                LabVariant("tcp-user-timeout", [
                    ("userTimeoutMs", number(Self.userTimeoutMilliseconds)), ("detectedAfterSeconds", seconds(carefulAfter)),
                    ("error", carefulDetected?["error"].map(JSONValue.string) ?? .null),
                ]),
            ],
            passed: passed,
            findings: [
                "naive: still \(naiveState?.state.kernelName ?? "gone") after \(Int(window)) s with \(naiveRetransmits) retransmissions; "
                    + "the kernel keeps going until tcp_retries2 = \(retries2) (about 15 minutes at the default).",
                "TCP_USER_TIMEOUT = \(Self.userTimeoutMilliseconds) ms: "
                    + (carefulAfter.map { "the writer saw \(carefulDetected?["error"] ?? "an error") \((($0) * 10).rounded() / 10) s after the link went down." }
                        ?? "the writer saw no error within the window."),
                "linger doctor: " + (doctorFoundAfter.map { "unreachable-peer reported \((($0) * 10).rounded() / 10) s after the link went down." }
                    ?? "no unreachable-peer finding within the window."),
            ],
            series: Array(series.values))
    }
}

/// Wall-clock milliseconds (the peers report detection in the same clock; they run on this machine).
private func realtimeMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
