public import LingerLink

/// How a file input is read.
public struct FileInputOptions: Sendable {
    /// Keep reading what is appended, through rotation (like `tail -F`), until cancelled.
    public var follow: Bool
    /// How often a followed file is checked for growth and rotation when it has nothing new: inotify would
    /// save these wake-ups, at the cost of a watch per directory; a fifth of a second is what `tail -F`
    /// users expect.
    public var pollInterval: Duration
    /// After the path names another file, how long the old one is still read (the writer may append until
    /// it reopens): it is finished once it has not grown for this long.
    public var rotateWait: Duration
    public var maximumLineBytes: Int
    /// Bytes read at a time.
    public var blockSize: Int

    public init(follow: Bool = false, pollInterval: Duration = .milliseconds(200), rotateWait: Duration = .seconds(1),
                maximumLineBytes: Int = 16 << 20, blockSize: Int = 256 << 10) {
        self.follow = follow
        self.pollInterval = pollInterval
        self.rotateWait = rotateWait
        self.maximumLineBytes = maximumLineBytes
        self.blockSize = blockSize
    }
}

/// What one input delivered.
public struct SourceTotals: Sendable {
    /// Lines read and queued for the server.
    public var sent: UInt64 = 0
    /// Lines the server already held (a resumed stream).
    public var skipped: UInt64 = 0
    public init() {}
}

/// Ships one file, or one path followed through rotation, as link streams: one stream per content (see
/// ``StreamName``), resumed where the server stands. Reads happen on ``SourceIO``'s threads.
public final class FollowedFile: Sendable {
    public let path: String
    private let client: LinkClient
    private let io: SourceIO
    private let options: FileInputOptions
    private let registry: StreamRegistry
    private let report: @Sendable (SourceEvent) -> Void

    public init(path: String, client: LinkClient, io: SourceIO, options: FileInputOptions, registry: StreamRegistry,
                report: @escaping @Sendable (SourceEvent) -> Void) {
        self.path = path
        self.client = client
        self.io = io
        self.options = options
        self.registry = registry
        self.report = report
    }

    /// Ships the file. Without `follow` it returns at the end of the file (throwing if it does not exist);
    /// with `follow` it runs until cancelled, waiting for a file that does not exist yet.
    public func run() async throws -> SourceTotals {
        var totals = SourceTotals()
        var file: InputFile?
        defer { file?.close() }
        while !Task.isCancelled {
            if file == nil {
                let path = self.path
                file = try await io.run { try InputFile.open(path) }
                if file == nil {
                    guard options.follow else { throw SourceError("\(path) does not exist") }
                    try await Task.sleep(for: options.pollInterval)
                    continue
                }
            }
            let ended = try await ship(file!, totals: &totals)
            file!.close()
            file = nil
            if ended { break }
        }
        return totals
    }

    /// Ships one open file until it ends (returns true), or is rotated away (returns false: open the path
    /// again). A truncation starts a new stream on the same file.
    private func ship(_ file: InputFile, totals: inout SourceTotals) async throws -> Bool {
        while true {
            guard let (stream, framer) = try await identify(file, totals: &totals) else { return !options.follow }
            switch try await deliver(file, on: stream, framer: framer, totals: &totals) {
            case .ended: return true
            case .rotated: return false
            case .truncated:
                report(.truncated(path: file.path))
                file.rewind()
            case .notTheSameContent:
                file.rewind()
            }
        }
    }

    private enum Outcome { case ended, rotated, truncated, notTheSameContent }

    /// Names the file's content and opens its stream: a known stream it continues, or a new one. Waits for
    /// the first byte (content is named by its head). Nil when a file that will not grow is empty.
    private func identify(_ file: InputFile, totals: inout SourceTotals) async throws -> (LinkStream, LineFramer)? {
        var head: [UInt8] = []
        while head.isEmpty {
            head = try await io.run { try file.head(StreamName.headLimit) }
            if head.isEmpty {
                if !options.follow || file.isCompressed { return nil }
                try await Task.sleep(for: options.pollInterval)
                if let now = FileIdentity.of(path: path), !now.isSameFile(as: file.identity) { return nil }
            }
        }
        var framer = LineFramer(maximumLineBytes: options.maximumLineBytes)
        for (name, mark) in StreamName.candidates(for: head, among: client.knownStreams) where !registry.rejected(name.description, for: file.identity) {
            guard registry.claim(name.description) else { continue }
            let (stream, _) = try await client.openStream(name.description)
            framer.resume(after: mark.sequence, check: mark.check)
            return (stream, framer)
        }
        let name = StreamName.fresh(for: head, taken: registry.names(plus: client.knownStreams.map(\.stream)))
        _ = registry.claim(name.description)
        let (stream, _) = try await client.openStream(name.description)
        report(.started(path: file.path, stream: name.description))
        return (stream, framer)
    }

    /// Reads and sends until the end, a rotation, a truncation, or a failed resume check.
    private func deliver(_ file: InputFile, on stream: LinkStream, framer: LineFramer, totals: inout SourceTotals) async throws -> Outcome {
        var framer = framer
        let resumingFrom = framer.skip
        var lastGrowth = ContinuousClock.now
        var rotatedAt: ContinuousClock.Instant?
        defer {
            client.finishStream(stream)
            registry.release(stream.name)
        }
        while true {
            try Task.checkCancellation()
            let block = options.blockSize
            let follow = options.follow && !file.isCompressed
            let skipBefore = framer.skip
            // Read and frame on the sources' thread, into a reused buffer: the batch is what comes back.
            let (read, framed, batched) = try await io.run { [framer] () throws -> (Int?, LineFramer, LinkBatch) in
                // Checked before every read: content cut and refilled past where reading stopped must not be
                // read from the middle.
                var framer = framer
                var batch = LinkBatch(capacity: block + block / 4 + 64)
                if follow && !file.stillHoldsWhatWasRead() { return (nil, framer, batch) }
                let n = try file.read(upTo: block) { bytes in _ = framer.frame(bytes, into: &batch) }
                return (n, framer, batch)
            }
            framer = framed
            var batch = consume batched  // held once, so the outbox stamps it in place
            guard let read else {
                framer.finish(into: &batch)
                try await send(consume batch, on: stream, framer: &framer, totals: &totals)
                return .truncated
            }
            if read > 0 {
                if framer.resumeMismatch { return rejectResume(stream, file: file) }
                if skipBefore > 0 && framer.skip == 0 {
                    totals.skipped += resumingFrom
                    report(.resumed(path: file.path, stream: stream.name, skipped: resumingFrom))
                }
                try await send(consume batch, on: stream, framer: &framer, totals: &totals)
                lastGrowth = .now
                continue
            }
            // The end, for now.
            if !options.follow || file.isCompressed {
                if framer.skip > 0 { return rejectResume(stream, file: file) }
                framer.finish(into: &batch)
                try await send(consume batch, on: stream, framer: &framer, totals: &totals)
                return .ended
            }
            let now = FileIdentity.of(path: path)
            if now == nil || !now!.isSameFile(as: file.identity) {
                // Renamed away or deleted: keep reading the old file until it stops growing, then finish it.
                if rotatedAt == nil { rotatedAt = .now }
                if ContinuousClock.now - max(lastGrowth, rotatedAt!) >= options.rotateWait {
                    if framer.skip > 0 { return rejectResume(stream, file: file) }
                    framer.finish(into: &batch)
                    try await send(consume batch, on: stream, framer: &framer, totals: &totals)
                    report(.rotated(path: path))
                    return .rotated
                }
            }
            try await Task.sleep(for: options.pollInterval)
        }
    }

    private func send(_ batch: consuming LinkBatch, on stream: LinkStream, framer: inout LineFramer, totals: inout SourceTotals) async throws {
        for cut in framer.takeTruncated() {
            report(.lineCut(path: path, line: cut.line, bytes: cut.bytes, limit: options.maximumLineBytes))
        }
        guard !batch.isEmpty else { return }
        totals.sent += UInt64(batch.count)
        try await client.send(consume batch, on: stream)
    }

    /// The file began like `stream` but is not its content: ship it as new content instead.
    private func rejectResume(_ stream: LinkStream, file: InputFile) -> Outcome {
        registry.reject(stream.name, for: file.identity)
        report(.notTheSameContent(path: file.path, stream: stream.name))
        return .notTheSameContent
    }
}
