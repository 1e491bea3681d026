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
    }

    private let state = Mutex(State())

    /// A new connection. Returns false when the server is at `limit` or stopping.
    func admit(_ channel: any Channel, limit: Int) -> Bool {
        state.withLock { state in
            guard !state.closed, state.channels.count < limit else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: any Channel) {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
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
}
