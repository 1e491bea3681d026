import NIOConcurrencyHelpers
import NIOCore

/// The bytes a server holds for its sink, received and not yet stored, summed over every connection: past
/// ``limit``, every connection pauses reading until commits give bytes back.
///
/// Why a shared budget: the per-connection limit (``LinkServerConfiguration/pendingLimit``) bounds one
/// connection, but not the server. A connection holds its pending batch and the commit in flight, and each
/// can overshoot the limit by one read loop (NIO reads up to four buffers per wake-up), so 32 senders into a
/// stalled sink held 295 MB, all they had sent, and a thousand would hold gigabytes. With the budget, a slow
/// sink costs at most the budget plus one read loop per connection.
///
/// Every byte taken belongs to a pending batch or a commit in flight, and a pending batch is committed as
/// soon as its connection's commit returns, so the budget always comes back while the sink makes progress:
/// paused connections cannot starve one another into a deadlock.
final class PendingBudget: Sendable {
    let limit: Int
    private struct State {
        var held = 0
        /// Connections that paused on the budget, woken (each on its own event loop) once there is room.
        var waiters: [ObjectIdentifier: (any EventLoop, @Sendable () -> Void)] = [:]
    }
    private let state = NIOLockedValueBox(State())

    init(limit: Int) { self.limit = limit }

    /// Bytes held now.
    var held: Int { state.withLockedValue { $0.held } }

    /// Counts `bytes` as held (they were received; a read that already happened is never refused).
    func take(_ bytes: Int) {
        guard bytes > 0 else { return }
        state.withLockedValue { $0.held += bytes }
    }

    /// Gives `bytes` back; wakes every paused connection once the total is under the limit.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let woken = state.withLockedValue { state -> [(any EventLoop, @Sendable () -> Void)] in
            state.held -= bytes
            guard state.held < limit, !state.waiters.isEmpty else { return [] }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for (eventLoop, wake) in woken { eventLoop.execute(wake) }
    }

    /// Whether there is room to read; if not, `wake` runs on `eventLoop` once there is (one registration per
    /// `owner`, however often it asks).
    func hasRoom(owner: ObjectIdentifier, eventLoop: any EventLoop, wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLockedValue { state in
            if state.held < limit { return true }
            state.waiters[owner] = (eventLoop, wake)
            return false
        }
    }

    /// A connection that closed no longer waits.
    func forget(owner: ObjectIdentifier) {
        _ = state.withLockedValue { $0.waiters.removeValue(forKey: owner) }
    }
}
