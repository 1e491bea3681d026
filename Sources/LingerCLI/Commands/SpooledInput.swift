import LingerLink
import LingerSources
import Synchronization

/// Stdin through a crash-safe spool (`--spool DIR`): every line is on disk before it is sent and leaves
/// the spool once acknowledged. Reading stdin into the spool does not wait for the server; a second task
/// sends what the spool holds, first what an earlier run left there, and follows it as it grows.
struct SpooledStandardInput: ShippedInput {
    let directory: String
    let maximumBytes: Int64
    let client: LinkClient
    let io: SourceIO
    let maximumLineBytes: Int

    func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        let directory = self.directory, maximumBytes = self.maximumBytes
        let spool = try await io.run { try Spool(directory: directory, maximumBytes: maximumBytes) }
        defer { spool.close() }
        let inputEnded = CompletionFlag()
        let fresh = FreshBatches()
        return try await withThrowingTaskGroup(of: UInt64.self) { group in
            group.addTask {
                defer { inputEnded.set() }
                return try await spoolStandardInput(into: spool, fresh: fresh, report: report)
            }
            group.addTask { try await sendSpooled(spool, fresh: fresh, inputEnded: inputEnded) }
            var totals = SourceTotals()
            _ = try await group.next()
            totals.sent = try await group.next() ?? 0
            return totals
        }
    }

    /// Stdin → spool, chunk by chunk; waits (stops reading) while the spool is full.
    private func spoolStandardInput(into spool: Spool, fresh: FreshBatches, report: @escaping @Sendable (SourceEvent) -> Void) async throws -> UInt64 {
        var framer = LineFramer(maximumLineBytes: maximumLineBytes)
        let reader = DescriptorReader(fd: 0)
        var spooled: UInt64 = 0
        var warned = false
        while true {
            try Task.checkCancellation()
            // Up to 4 MiB per append while input keeps coming: one fsync per append is the spool's cost.
            guard let bytes = try await io.run({ try reader.read(upTo: 256 << 10, gathering: 4 << 20) }) else { continue }
            var batch = LinkBatch()
            if bytes.isEmpty { framer.finish(into: &batch) } else { bytes.withUnsafeBytes { _ = framer.frame($0, into: &batch) } }
            for cut in framer.takeTruncated() { report(.lineCut(path: "stdin", line: cut.line, bytes: cut.bytes, limit: maximumLineBytes)) }
            if !batch.isEmpty {
                let size = Int64(batch.byteCount)
                while spool.bytes + size > spool.maximumBytes && spool.bytes > 0 {
                    if !warned {
                        StandardOutput.note("the spool \(spool.directory) is full (\(spool.bytes) of \(spool.maximumBytes) bytes); reading waits for the server to acknowledge")
                        warned = true
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let spooledBatch = batch
                let first = try await io.run { try spool.append(spooledBatch) }
                fresh.put(first: first, batch)  // the sender takes it from memory; the spool is the durable copy
                spooled += UInt64(batch.count)
            }
            if bytes.isEmpty { return spooled }
        }
    }

    /// Spool → link: everything after the server's mark, as it appears; done when stdin ended and all of it
    /// is sent. Acknowledged segments are deleted as it goes.
    private func sendSpooled(_ spool: Spool, fresh: FreshBatches, inputEnded: CompletionFlag) async throws -> UInt64 {
        let (stream, mark) = try await client.openStream(spool.streamName)
        var sentThrough = mark.sequence
        var sent: UInt64 = 0
        while true {
            let after = sentThrough
            let ended = inputEnded.isSet
            // What was just spooled comes from memory; what an earlier run left, or a backlog, from disk.
            let held = fresh.take(after: after)
            let (first, batch) = if let held { held } else { try await io.run { try spool.batch(after: after) } }
            if batch.isEmpty {
                let acknowledged = client.acknowledgedSequence(on: stream)
                _ = try? await io.run { spool.release(through: acknowledged) }
                if ended && sentThrough + 1 >= spool.next {
                    // Everything is sent: once it is acknowledged, the spool is emptied.
                    try await client.flush()
                    let acknowledged = client.acknowledgedSequence(on: stream)
                    try await io.run { spool.release(through: acknowledged) }
                    return sent
                }
                try await Task.sleep(for: .milliseconds(20))  // the spool's tail is polled: appends are in-process
                continue
            }
            guard first == after + 1 else { throw SourceError("the spool \(spool.directory) skips from \(after) to \(first)") }
            sentThrough = try await client.send(batch, on: stream)
            sent += UInt64(batch.count)
            let acknowledged = client.acknowledgedSequence(on: stream)
            _ = try? await io.run { spool.release(through: acknowledged) }
        }
    }

    func acknowledged() async {}
}

/// A flag one task sets and another reads.
final class CompletionFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// Batches just appended to the spool, handed to the sending task in memory (bounded: past 64 batches the
/// sender reads them back from the spool instead).
final class FreshBatches: Sendable {
    private let queue = Mutex<[(first: UInt64, batch: LinkBatch)]>([])

    func put(first: UInt64, _ batch: LinkBatch) {
        queue.withLock { queue in
            if queue.count >= 64 { queue.removeFirst() }
            queue.append((first, batch))
        }
    }

    /// The batch that starts right after `after`, if it is still held; older ones are dropped.
    func take(after: UInt64) -> (first: UInt64, batch: LinkBatch)? {
        queue.withLock { queue in
            queue.removeAll { $0.first + UInt64($0.batch.count) <= after + 1 }  // already sent
            guard let index = queue.firstIndex(where: { $0.first == after + 1 }) else { return nil }
            return queue.remove(at: index)
        }
    }
}
