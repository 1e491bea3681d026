public import LingerLink
import NIOConcurrencyHelpers
import Synchronization

/// Stdin through a crash-safe spool (`--spool DIR`): every line is on disk before it is sent and leaves
/// the spool once acknowledged. Reading stdin into the spool does not wait for the server; a second task
/// sends what the spool holds, first what an earlier run left there, and follows it as it grows.
public struct SpooledStandardInput: ShippedInput {
    let directory: String
    let maximumBytes: Int64
    let sync: Spool.FsyncPolicy
    let client: LinkClient
    let io: SourceIO
    let maximumLineBytes: Int

    public init(directory: String, maximumBytes: Int64, sync: Spool.FsyncPolicy, client: LinkClient, io: SourceIO, maximumLineBytes: Int) {
        self.directory = directory
        self.maximumBytes = maximumBytes
        self.sync = sync
        self.client = client
        self.io = io
        self.maximumLineBytes = maximumLineBytes
    }

    public func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        let directory = self.directory, maximumBytes = self.maximumBytes, sync = self.sync
        let spool = try await io.run { try Spool(directory: directory, maximumBytes: maximumBytes, policy: sync) }
        defer { spool.close() }
        let inputEnded = CompletionFlag()
        let fresh = FreshBatches()
        // The spool's stream, opened once the server is reached; the sender needs it to send, and reading
        // needs it only when the spool is full (to wait for the acknowledgements that make room).
        let client = self.client, name = spool.streamName
        let opening = Task { try await client.openStream(name) }
        defer { opening.cancel() }
        let stream: @Sendable () async throws -> (stream: LinkStream, mark: LinkStreamMark) = {
            try await withTaskCancellationHandler { try await opening.value } onCancel: { opening.cancel() }
        }
        return try await withThrowingTaskGroup(of: UInt64.self) { group in
            group.addTask {
                defer { inputEnded.set(); fresh.wake() }
                return try await spoolStandardInput(into: spool, stream: stream, fresh: fresh, report: report)
            }
            group.addTask { try await sendSpooled(spool, stream: stream, fresh: fresh, inputEnded: inputEnded) }
            var totals = SourceTotals()
            _ = try await group.next()
            totals.sent = try await group.next() ?? 0
            return totals
        }
    }

    /// Stdin → spool, chunk by chunk; waits (stops reading) while the spool is full. Reading and framing the
    /// next chunk overlaps the append (write and fsync) of the one before: one after the other, they took
    /// about 36 ms per 4 MiB, a third of it waiting on the disk.
    private func spoolStandardInput(
        into spool: Spool, stream: @Sendable () async throws -> (stream: LinkStream, mark: LinkStreamMark), fresh: FreshBatches,
        report: @escaping @Sendable (SourceEvent) -> Void
    ) async throws -> UInt64 {
        var framer = LineFramer(maximumLineBytes: maximumLineBytes)
        let reader = DescriptorReader(fd: 0)
        var spooled: UInt64 = 0
        var warned = false
        let gather = Int(min(4 << 20, max(256 << 10, spool.maximumBytes / 4)))
        var appending: (task: Task<UInt64, any Error>, lines: Int)?
        /// Waits for the append in flight (which handed its lines to the sender as it finished).
        func finishAppend() async throws {
            guard let (task, lines) = appending else { return }
            appending = nil
            _ = try await task.value
            spooled += UInt64(lines)
        }
        do {
            while true {
                try Task.checkCancellation()
                // Up to 4 MiB per append while input keeps coming (one fsync per append is the spool's cost),
                // and never more than a quarter of the spool, so that one append always fits once it drains.
                guard let bytes = try await io.run({ try reader.read(upTo: 256 << 10, gathering: gather) }) else {
                    fresh.wake()  // stdin is idle: let the sender release what was acknowledged meanwhile
                    continue
                }
                var batch = LinkBatch()
                if bytes.isEmpty { framer.finish(into: &batch) } else { bytes.withUnsafeBytes { _ = framer.frame($0, into: &batch) } }
                for cut in framer.takeTruncated() { report(.lineCut(path: "stdin", line: cut.line, bytes: cut.bytes, limit: maximumLineBytes)) }
                try await finishAppend()
                if !batch.isEmpty {
                    let size = Int64(batch.byteCount)
                    while spool.bytes + size > spool.maximumBytes && spool.bytes > 0 {
                        if !warned {
                            report(.spoolFull(directory: spool.directory, bytes: spool.bytes, limit: spool.maximumBytes))
                            warned = true
                        }
                        // Room comes only from acknowledgements: wait for the one that frees the oldest segment.
                        let (stream, _) = try await stream()
                        guard let end = spool.oldestSegmentEnd else { break }
                        try await client.waitForAcknowledgement(through: end, on: stream)
                        try await io.run { spool.release(through: client.acknowledgedSequence(on: stream)) }
                    }
                    let lines = batch.count
                    // Moved, not shared, on its way to the sender: its outbox then stamps it in place.
                    let moving = NIOLockedValueBox<LinkBatch?>(consume batch)
                    appending = (Task {
                        let first = try await io.run { try moving.withLockedValue { try spool.append($0!) } }
                        // At once, not when the next chunk is read: else the sender finds the lines on disk
                        // first and reads them back from there (measured: most of them were).
                        fresh.put(first: first, moving.withLockedValue { $0.take()! })  // from memory; the spool is the durable copy
                        return first
                    }, lines)
                }
                if bytes.isEmpty {
                    try await finishAppend()
                    return spooled
                }
            }
        } catch {
            // Never leave an append running past this function: the caller closes the spool next.
            if let (task, _) = appending { _ = try? await task.value }
            throw error
        }
    }

    /// Spool → link: everything after the server's mark, as it appears; done when stdin ended and all of it
    /// is sent. Acknowledged segments are deleted as it goes.
    private func sendSpooled(
        _ spool: Spool, stream opened: @Sendable () async throws -> (stream: LinkStream, mark: LinkStreamMark), fresh: FreshBatches,
        inputEnded: CompletionFlag
    ) async throws -> UInt64 {
        let (stream, mark) = try await opened()
        var sentThrough = mark.sequence
        var sent: UInt64 = 0
        var wakeUps = fresh.wakeUps.makeAsyncIterator()
        let releaser = BackgroundRelease(spool: spool, io: io)
        while true {
            let after = sentThrough
            let ended = inputEnded.isSet
            // What was just spooled comes from memory; what an earlier run left, or a backlog, from disk.
            var held = fresh.take(after: after)
            let (first, batch) = if held != nil { held.take()! } else { try await io.run { try spool.batch(after: after) } }
            if batch.isEmpty {
                releaser.request(through: client.acknowledgedSequence(on: stream))
                if ended && sentThrough + 1 >= spool.next {
                    // Everything is sent: once it is acknowledged, the spool is emptied.
                    try await client.flush()
                    await releaser.finish()
                    let acknowledged = client.acknowledgedSequence(on: stream)
                    try await io.run { spool.release(through: acknowledged) }
                    return sent
                }
                _ = await wakeUps.next()  // the next append (or the end of stdin) wakes it
                try Task.checkCancellation()
                continue
            }
            guard first == after + 1 else { throw SourceError("the spool \(spool.directory) skips from \(after) to \(first)") }
            sent += UInt64(batch.count)
            sentThrough = try await client.send(consume batch, on: stream)
            releaser.request(through: client.acknowledgedSequence(on: stream))
        }
    }

    public func acknowledged() async {}
}

/// Releases acknowledged spool segments without holding up the sending loop: removing a 64 MiB segment
/// takes 20 to 50 ms here. One release runs at a time; a request while one runs is left for the next one
/// (acknowledgements only grow, so the next request covers it).
final class BackgroundRelease: Sendable {
    private let spool: Spool
    private let io: SourceIO
    private let running = Mutex<Task<Void, Never>?>(nil)

    init(spool: Spool, io: SourceIO) {
        self.spool = spool
        self.io = io
    }

    func request(through acknowledged: UInt64) {
        let (spool, io) = (self.spool, self.io)
        running.withLock { running in
            guard running == nil else { return }
            running = Task { [self] in
                _ = try? await io.run { spool.release(through: acknowledged) }
                self.running.withLock { $0 = nil }
            }
        }
    }

    /// Waits for the release in flight, if any: the spool is closed after the sender returns.
    func finish() async {
        await running.withLock { $0 }?.value
    }
}

/// A flag one task sets and another reads.
final class CompletionFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// Batches just appended to the spool, handed to the sending task in memory (bounded: past 64 batches the
/// sender reads them back from the spool instead). The sender waits for the next one here rather than
/// polling the spool: a 20 ms poll left the link idle between appends.
final class FreshBatches: Sendable {
    private let queue = Mutex<[(first: UInt64, batch: LinkBatch)]>([])
    /// One pending wake-up at most: a put between the sender's check and its wait is not missed.
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func put(first: UInt64, _ batch: LinkBatch) {
        queue.withLock { queue in
            if queue.count >= 64 { queue.removeFirst() }
            queue.append((first, batch))
        }
        signal.yield()
    }

    /// Wakes the waiting sender without a batch (stdin ended).
    func wake() { signal.yield() }

    /// The wake-ups: one element after each ``put(first:_:)`` or ``wake()`` (at most one pending), for the
    /// one sending task to iterate.
    var wakeUps: AsyncStream<Void> { signals }

    /// The batch that starts right after `after`, if it is still held; older ones are dropped.
    func take(after: UInt64) -> (first: UInt64, batch: LinkBatch)? {
        queue.withLock { queue in
            queue.removeAll { $0.first + UInt64($0.batch.count) <= after + 1 }  // already sent
            guard let index = queue.firstIndex(where: { $0.first == after + 1 }) else { return nil }
            return queue.remove(at: index)
        }
    }
}
