import NIOCore
import Synchronization

/// The server's open connections, and which one speaks for each client id.
///
/// The sink fences by epoch (see ``LinkSink``); this table only finds the connection to tell. Claims complete
/// on different event loops in any order, so ownership goes to the larger epoch, never simply to the later
/// call: a connection whose claim was overtaken learns here that it is already replaced.
final class ConnectionRegistry: Sendable {
    private struct State {
        var owners: [String: (channel: ObjectIdentifier, epoch: UInt64)] = [:]
        var channels: [ObjectIdentifier: any Channel] = [:]
        var closed = false
        var admission: FairAdmission
    }

    private let state: Mutex<State>
    /// Sessions at once (`--max-connections`); connections still before their HELLO may be as many again.
    let limit: Int
    /// Refusals at the limit are logged at most every 30 s, with how many came since.
    private let refusals = LogThrottle(every: .seconds(30))

    init(limit: Int, turn: Duration = .seconds(5)) {
        self.limit = max(1, limit)
        state = Mutex(State(admission: FairAdmission(limit: limit, turn: turn)))
    }

    /// A new connection, before its HELLO. Returns false when the server is stopping, or holds so many
    /// connections that it refuses at once (the limit again, for those still to say who they are).
    func admit(_ channel: any Channel) -> Bool {
        state.withLock { state in
            guard !state.closed, state.channels.count < 2 * limit + 16 else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    /// What a refusal at the limit tells the operator (nil: already told within the last 30 s).
    struct Refusal {
        var yielder: (any Channel)?
        var log: String?
    }

    /// A connection said HELLO as `clientID`: whether it gets a session now (see ``FairAdmission``).
    /// - Returns: nil when admitted; else who is asked to yield, and a line for the log now and then.
    func hello(_ channel: any Channel, clientID: String) -> Refusal? {
        state.withLock { state in
            let now = ContinuousClock.now
            guard case .refuse(let yielder) = state.admission.hello(ObjectIdentifier(channel), clientID: clientID, now: now) else { return nil }
            let line = refusals.shouldLog("limit", now: now).map { count in
                let waiting = state.admission.waiting.count
                return "at --max-connections \(limit): turned away \(count) connection\(count == 1 ? "" : "s") "
                    + "(\(waiting) sender\(waiting == 1 ? "" : "s") waiting, served in turn; "
                    + "raise --max-connections if they should all ship at once)"
            }
            return Refusal(yielder: yielder.flatMap { state.channels[$0] }, log: line)
        }
    }

    func remove(_ channel: any Channel) {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            state.admission.ended(id)
            state.channels[id] = nil
            for (clientID, owner) in state.owners where owner.channel == id { state.owners[clientID] = nil }
        }
    }

    /// Records that `channel` claimed `clientID` with `epoch`.
    /// - Returns: whether it is the newest claim, and the connection it replaced (to be sent GOAWAY).
    func claimed(clientID: String, epoch: UInt64, by channel: any Channel) -> (isNewest: Bool, replaced: (any Channel)?) {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            if let owner = state.owners[clientID], owner.epoch > epoch { return (false, nil) }
            let previous = state.owners[clientID].flatMap { $0.channel == id ? nil : state.channels[$0.channel] }
            state.owners[clientID] = (id, epoch)
            return (true, previous)
        }
    }

    /// Stops admitting and returns the open connections (for GOAWAY).
    func beginShutdown() -> [any Channel] {
        state.withLock { state in
            state.closed = true
            return Array(state.channels.values)
        }
    }

    var connectionCount: Int { state.withLock { $0.channels.count } }
    /// Connections that hold a session.
    var sessionCount: Int { state.withLock { $0.admission.sessions.count } }
}
