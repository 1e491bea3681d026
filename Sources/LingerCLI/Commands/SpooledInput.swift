import LingerLink
import LingerSources

/// Stdin through a crash-safe spool (`--spool DIR`): every line is on disk before it is sent and leaves
/// the spool once acknowledged; a restarted sender first delivers what the spool holds.
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
        let (stream, mark) = try await client.openStream(spool.streamName)
        var totals = SourceTotals()
        // What an earlier run spooled and the server lacks goes first, in order.
        var sentThrough = mark.sequence
        while true {
            let after = sentThrough
            let (first, lines) = try await io.run { try spool.records(after: after) }
            guard !lines.isEmpty else { break }
            precondition(first == after + 1, "the spool's records are consecutive")
            var batch = LinkBatch()
            for line in lines { batch.append(line) }
            sentThrough = try await client.send(batch, on: stream)
            totals.sent += UInt64(lines.count)
            await release(spool, on: stream)
        }
        if sentThrough + 1 < spool.nextSequence { throw SourceError("the spool \(directory) is not consecutive") }
        // Then stdin: spool each chunk, then send it.
        var framer = LineFramer(maximumLineBytes: maximumLineBytes)
        let reader = DescriptorReader(fd: 0)
        while true {
            let bytes = try await io.run { try reader.read(upTo: 256 << 10) }
            var batch = LinkBatch()
            if bytes.isEmpty { framer.finish(into: &batch) } else { bytes.withUnsafeBytes { _ = framer.frame($0, into: &batch) } }
            for cut in framer.takeTruncated() { report(.lineCut(path: "stdin", line: cut.line, bytes: cut.bytes, limit: maximumLineBytes)) }
            let lines = batch.payloads
            if !lines.isEmpty {
                try await waitForRoom(spool, bytes: lines.reduce(0) { $0 + $1.count + 8 }, stream: stream)
                _ = try await io.run { try spool.append(lines) }
                try await client.send(batch, on: stream)
                totals.sent += UInt64(lines.count)
                await release(spool, on: stream)
            }
            if bytes.isEmpty { break }
        }
        return totals
    }

    /// Deletes the segments the server acknowledged.
    private func release(_ spool: Spool, on stream: LinkStream) async {
        let acknowledged = client.acknowledgedSequence(on: stream)
        _ = try? await io.run { spool.release(through: acknowledged) }
    }

    /// A full spool stops reading stdin (the writer upstream waits) until acknowledgements free room.
    private func waitForRoom(_ spool: Spool, bytes: Int, stream: LinkStream) async throws {
        var warned = false
        while spool.bytes + Int64(bytes) > spool.maximumBytes {
            if !warned {
                StandardOutput.note("the spool \(spool.directory) is full (\(spool.bytes) of \(spool.maximumBytes) bytes); waiting for the server to acknowledge")
                warned = true
            }
            await release(spool, on: stream)
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
