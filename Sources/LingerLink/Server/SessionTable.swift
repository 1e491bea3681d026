import NIOCore
import Synchronization

/// The server's view of its clients: which connection currently speaks for each client id, and the sink
/// behind them. Every sink call goes through here under one lock, which is what makes dedupe safe when a
/// client reconnects while its old connection is still draining: stores from a replaced connection are
/// refused, so they are never acknowledged and never written twice.
final class SessionTable: Sendable {
    private struct State {
        var owners: [String: ObjectIdentifier] = [:]
        var channels: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    let sink: any LinkSink

    init(sink: any LinkSink) { self.sink = sink }

    /// A new connection (not yet authenticated). Returns false when the server is at `limit` or stopping.
    func admit(_ channel: any Channel, limit: Int) -> Bool {
        state.withLock { state in
            guard !state.closed, state.channels.count < limit else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: any Channel, clientID: String?) {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            state.channels[id] = nil
            if let clientID, state.owners[clientID] == id { state.owners[clientID] = nil }
        }
    }

    /// Makes `channel` the voice of `clientID` and returns the resume point, plus the connection it replaced.
    func open(clientID: String, channel: any Channel) -> (highest: UInt64, replaced: (any Channel)?) {
        state.withLock { state in
            let previous = state.owners[clientID].flatMap { state.channels[$0] }
            state.owners[clientID] = ObjectIdentifier(channel)
            return (sink.highestAccepted(clientID: clientID), previous.flatMap { $0 === channel ? nil : $0 })
        }
    }

    /// Stores a batch if `channel` still speaks for `clientID`. Returns false for a replaced connection.
    func store(clientID: String, channel: any Channel, through sequence: UInt64, records: ByteBuffer) throws -> Bool {
        try state.withLock { state in
            guard state.owners[clientID] == ObjectIdentifier(channel) else { return false }
            try sink.store(clientID: clientID, through: sequence, records: records)
            return true
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
