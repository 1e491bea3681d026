import Foundation
@testable import LingerLink
import NIOCore
import Synchronization

/// Frames as the server receives them: a run of DATA frames in wire form.
func dataRun(_ sequences: some Sequence<UInt64>, payload: (UInt64) -> String = { "m\($0)" }) -> ByteBuffer {
    var buffer = ByteBuffer()
    for sequence in sequences { buffer.writeLinkFrame(.data(sequence: sequence, payload: ByteBuffer(string: payload(sequence)))) }
    return buffer
}

func hello(_ clientID: String = "c1", token: String = "", idleMilliseconds: UInt32 = 3000) -> LinkFrame {
    .hello(.init(clientID: clientID, token: token, idleTimeoutMilliseconds: idleMilliseconds))
}

/// The text of a batch's messages, newline-separated as a line sink writes them.
func text(_ batch: LinkSinkBatch) -> String { String(buffer: batch.lines) }

/// A sink whose answers a test scripts: it records every call, can hold commits until released, and can fail
/// them with a chosen error. Stores through a ``MarkBook`` so fencing behaves as in the real sinks.
final class ScriptedSink: LinkSink {
    struct State {
        var book = MarkBook()
        var stored = ""
        var commitCalls: [[LinkSinkBatch]] = []
        var failures: [LinkSinkError] = []
        var held: [CheckedContinuation<Void, Never>] = []
        var holding = false
    }

    let state = Mutex(State())

    func claim(clientID: String) async throws -> LinkSinkClaim { state.withLock { $0.book.claim(clientID: clientID) } }

    func commit(_ batches: [LinkSinkBatch]) async throws -> [LinkCommitOutcome] {
        await withCheckedContinuation { continuation in
            let proceed = state.withLock { state -> Bool in
                if state.holding { state.held.append(continuation); return false }
                return true
            }
            if proceed { continuation.resume() }
        }
        return try state.withLock { state in
            state.commitCalls.append(batches)
            if !state.failures.isEmpty { throw state.failures.removeFirst() }
            let outcomes = state.book.outcomes(for: batches)
            for (batch, outcome) in zip(batches, outcomes) where outcome == .stored {
                state.book.record(batch)
                state.stored += text(batch)
            }
            return outcomes
        }
    }

    func close() async throws {}

    var acceptsNewlines: Bool { false }

    func hold() { state.withLock { $0.holding = true } }

    func release() {
        let held = state.withLock { state in
            state.holding = false
            defer { state.held.removeAll() }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    var stored: String { state.withLock { $0.stored } }
    var commitCalls: [[LinkSinkBatch]] { state.withLock { $0.commitCalls } }
}

/// A directory under /tmp for one test, removed when the test's suite instance lets go of it (pass or fail):
/// Swift Testing makes a suite instance per test, and a struct has no deinit of its own.
final class TemporaryDirectory {
    let path: String

    init(prefix: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
