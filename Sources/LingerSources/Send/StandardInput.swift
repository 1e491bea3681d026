#if canImport(Glibc)
@preconcurrency import Glibc
#endif
public import LingerLink

/// Stdin without a spool: one unnamed stream numbered by line position, so the same input piped again with
/// the same client id continues where the server stands.
public struct StandardInput: ShippedInput {
    let client: LinkClient
    let io: SourceIO
    let maximumLineBytes: Int

    public init(client: LinkClient, io: SourceIO, maximumLineBytes: Int) {
        self.client = client
        self.io = io
        self.maximumLineBytes = maximumLineBytes
    }

    public func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        let skip = try await client.start()
        var framer = LineFramer(maximumLineBytes: maximumLineBytes)
        framer.resume(after: skip, check: 0)
        let reader = DescriptorReader(fd: 0)
        let block = min(256 << 10, client.configuration.outboxMessages * 16 + 4096)
        while true {
            try Task.checkCancellation()
            guard let bytes = try await io.run({ try reader.read(upTo: block) }) else { continue }
            var batch = LinkBatch(capacity: bytes.count + bytes.count / 4 + 64)
            if bytes.isEmpty {
                framer.finish(into: &batch)
            } else {
                bytes.withUnsafeBytes { _ = framer.frame($0, into: &batch) }
            }
            for cut in framer.takeTruncated() { report(.lineCut(path: "stdin", line: cut.line, bytes: cut.bytes, limit: maximumLineBytes)) }
            if !batch.isEmpty { try await client.send(consume batch) }
            if bytes.isEmpty { break }
        }
        var totals = SourceTotals()
        totals.skipped = min(skip, framer.lines)
        totals.sent = framer.lines - totals.skipped
        return totals
    }
}

