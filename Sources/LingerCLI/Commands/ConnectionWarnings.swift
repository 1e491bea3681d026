import LingerLink
import Synchronization

/// `linger send`'s warnings while it cannot reach the server: one line at the first failed attempt, then one
/// at each backoff step (whenever the wait has at least doubled since the last line) and at least once a
/// minute, so an outage is visible without flooding the log.
final class ConnectionWarnings: Sendable {
    private let last = Mutex<(retryIn: Duration, at: ContinuousClock.Instant)?>(nil)

    func callback() -> @Sendable (ConnectionTrouble) -> Void {
        { [self] trouble in
            let now = ContinuousClock.now
            let due = last.withLock { last -> Bool in
                let due = trouble.attempt == 1 || last == nil || trouble.retryIn >= last!.retryIn * 2 || now - last!.at >= .seconds(60)
                if trouble.attempt == 1 { last = nil }
                if due { last = (trouble.retryIn, now) }
                return due
            }
            guard due else { return }
            let down = trouble.attempt == 1 ? "" : ", down for \(trouble.downFor.formattedSeconds)"
            StandardOutput.note("warning: \(trouble.reason); attempt \(trouble.attempt)\(down), retrying in \(trouble.retryIn.formattedSeconds)")
        }
    }
}
