#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import LingerLink
import LingerSources
import Synchronization

/// `--progress`: a status line on stderr, rewritten in place twice a second on a terminal, or a line every
/// 5 s otherwise (a log file wants a record, not a flood).
final class ProgressReporter: ShipmentProgress {
    let client: LinkClient
    private let terminal = isatty(2) != 0
    private let started = ContinuousClock.now
    private let last = Mutex<(at: ContinuousClock.Instant, sent: UInt64)>((ContinuousClock.now, 0))

    init(client: LinkClient) {
        self.client = client
    }

    /// Reports until cancelled.
    func run(until client: LinkClient) async {
        let interval: Duration = terminal ? .milliseconds(500) : .seconds(5)
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            let now = ContinuousClock.now
            let sent = client.totals.sent
            let rate = last.withLock { last -> Double in
                defer { last = (now, sent) }
                return Double(sent - last.sent) / max(Self.seconds(now - last.at), 0.001)
            }
            show(rate: rate, final: false)
        }
    }

    func finish() {
        let sent = client.totals.sent
        show(rate: sent == 0 ? nil : Double(sent) / max(Self.seconds(ContinuousClock.now - started), 0.001), final: true)
    }

    private func show(rate: Double?, final: Bool) {
        let (sent, acknowledged) = client.totals
        var text = "sent \(sent)  acked \(acknowledged)  in flight \(client.unacknowledged)  reconnects \(client.reconnectCount)"
        if let rate { text += "  \(Int(rate)) msg/s" }
        if let trouble = client.connectionTrouble {
            text += "  connecting (attempt \(trouble.attempt + 1), next in \(trouble.retryIn.formattedSeconds)): \(trouble.reason)"
        }
        StandardOutput.write(Array(((terminal && !final) ? "\r" + text + "   " : text + "\n").utf8), to: 2)
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
