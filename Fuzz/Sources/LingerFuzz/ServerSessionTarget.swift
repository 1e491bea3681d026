@testable import LingerLink
import NIOCore

/// The server's session state machine, driven by frames decoded from the input (as the decoder would hand
/// them on) interleaved with the sink's and the handler's events, against a model sink that stores a batch
/// only for the current epoch and in sequence. Invariants:
/// - never an ACK beyond what the model sink stored for that stream;
/// - never a commit from a connection that was replaced, sent an ERROR or a GOAWAY;
/// - after an ERROR, nothing but ACKs of what was already in flight, and the close deadline closes.
enum ServerSessionTarget {
    /// The model of a sink shared with a newer connection of the same client id.
    struct ModelSink {
        var epoch: UInt64 = 0
        var stored: [LinkStreamKey: UInt64] = [:]

        mutating func commit(_ batches: [LinkSinkBatch]) -> [LinkCommitOutcome] {
            batches.map { batch in
                guard batch.epoch == epoch, batch.firstSequence == (stored[batch.key] ?? 0) + 1 else { return .fenced }
                stored[batch.key] = batch.lastSequence
                return .stored
            }
        }
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        var reader = InputReader(input)
        let tokens = (reader.byte() ?? 0) & 1 == 1 ? [LinkToken(secret: "s3cret", clientIDs: ["web-1"])] : []
        var session = ServerSession(configuration: .init(
            tokens: tokens, serverID: "fuzz", keepMessageBytes: true, acceptsNewlines: false, pendingLimit: 256))
        var sink = ModelSink()
        var inFlight: [LinkSinkBatch]?
        var claiming: String?
        var clientID: String?
        var streamKeys: [UInt32: LinkStreamKey] = [:]
        var leaving = false  // GOAWAY or ERROR sent, or replaced
        var errorSent = false

        func perform(_ action: ServerSession.Action, after event: String) {
            switch action {
            case .claim(let id):
                if leaving { violated("a claim after the connection began leaving (\(event))") }
                claiming = id
            case .welcome:
                if leaving { violated("a WELCOME after the connection began leaving (\(event))") }
            case .commit(let batches):
                if leaving { violated("a commit after GOAWAY, ERROR or replacement (\(event))") }
                if inFlight != nil { violated("a second commit while one is in flight (\(event))") }
                inFlight = batches
            case .acknowledge(let acknowledgements, let next):
                check(acknowledgements, after: event)
                if let next {
                    if leaving { violated("a commit after GOAWAY, ERROR or replacement (\(event))") }
                    inFlight = next
                }
            case .acknowledgeAndClose(let acknowledgements):
                check(acknowledgements, after: event)
                leaving = true
            case .error:
                leaving = true
                errorSent = true
            case .goAway:
                leaving = true
            case .none, .pong, .ping, .close:
                break
            }
        }

        func check(_ acknowledgements: [ServerSession.Acknowledgement], after event: String) {
            for ack in acknowledgements {
                guard let key = streamKeys[ack.stream] else { violated("an ACK for stream \(ack.stream), never opened (\(event))") }
                let stored = sink.stored[key] ?? 0
                if ack.through > stored { violated("ACK through \(ack.through) on \(key), but the sink stored through \(stored) (\(event))") }
            }
        }

        while let op = reader.byte() {
            switch op % 8 {
            case 0, 1, 2, 3:
                // The next frame, self-delimited by its length field, from the input.
                guard var stream = reader.frame(limit: 8192) else { return }
                do {
                    if let run = try LinkInboundDecoder.readDataRun(&stream, maximumFrameLength: 8192) {
                        perform(session.dataReceived(run), after: "DATA")
                    } else if let frame = try stream.readLinkFrame(maximumLength: 8192) {
                        let wasStreaming = clientID != nil && !leaving
                        let action = session.frameReceived(frame)
                        if case .open(let index, let id) = frame, wasStreaming, action == .none, let clientID, streamKeys[index] == nil {
                            streamKeys[index] = LinkStreamKey(clientID: clientID, stream: id)
                        }
                        perform(action, after: "\(frame.kindName)")
                    }
                } catch {
                    perform(session.protocolError(error), after: "decoding error \(error)")
                }
            case 4:
                // The sink answers the claim.
                guard let id = claiming else { continue }
                claiming = nil
                sink.epoch += 1
                let newest = (reader.byte() ?? 0) % 4 != 0
                if !newest { sink.epoch += 1 }  // another connection claimed meanwhile
                let action = session.claimed(LinkSinkClaim(epoch: newest ? sink.epoch : sink.epoch - 1, sequences: [:]), isNewest: newest)
                if case .welcome = action {
                    clientID = id
                    streamKeys[0] = LinkStreamKey(clientID: id)
                }
                perform(action, after: "claim")
            case 5:
                // The sink answers the commit in flight.
                guard let batches = inFlight else { continue }
                inFlight = nil
                perform(session.committed(sink.commit(batches)), after: "commit answered")
            case 6:
                switch (reader.byte() ?? 0) % 6 {
                case 0: perform(session.inputClosed(), after: "peer EOF")
                case 1: perform(session.readIdle(timeout: .seconds(30)), after: "read idle")
                case 2: perform(session.writeIdle(), after: "write idle")
                case 3:
                    // A newer connection claimed the client id: the sink fences this one's epoch.
                    sink.epoch += 1
                    perform(session.replaced(), after: "replaced")
                    leaving = true
                case 4: perform(session.shutdownRequested(), after: "shutdown")
                default: perform(session.commitFailed(LinkSinkError("disk full", isRetryable: false)), after: "sink failed")
                }
            default:
                let action = session.closeDeadlinePassed()
                if action != .close { violated("the close deadline passed and the session did not close") }
                return
            }
        }
        if errorSent, session.closeDeadlinePassed() != .close { violated("after an ERROR the close deadline did not close") }
    }
}
