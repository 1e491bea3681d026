import LingerLink
import Synchronization

/// Ships one file, found by its device and inode, not by its path: it goes on reading the file through
/// renames (a rotated log is read to its end, and again whenever a late writer adds to it), notices when the
/// file is cut (copytruncate) and starts over as new content, and ends only when the file has left the
/// sender's view (deleted, or renamed out of it) and been quiet for `rotateWait`. Without following it reads
/// to the end once.
///
/// Which stream the file is comes from the ``StreamCatalog``; a partial last line is never sent while the
/// file may still grow (when following, never at all: a line finished after a rename is sent once, whole).
final class FileHarvester: Sendable {
    let file: InputFile
    let matched: Bool
    private let client: LinkClient
    private let io: SourceIO
    private let catalog: StreamCatalog
    private let options: FileInputOptions
    private let report: @Sendable (SourceEvent) -> Void
    let wakeup = Wakeup()
    private let visible = Mutex(true)
    /// When it was first looked at, for how long it may wait for another file's stream.
    private let firstSeen = ContinuousClock.now

    init(file: InputFile, matched: Bool, client: LinkClient, io: SourceIO, catalog: StreamCatalog, options: FileInputOptions,
         report: @escaping @Sendable (SourceEvent) -> Void) {
        self.file = file
        self.matched = matched
        self.client = client
        self.io = io
        self.catalog = catalog
        self.options = options
        self.report = report
    }

    var key: FileKey { file.key }

    /// Whether the last scan of the directories still found the file under a name the sender watches.
    var inView: Bool {
        get { visible.withLock { $0 } }
        set { visible.withLock { $0 = newValue } }
    }

    // MARK: - Identifying

    /// What the file is now (see ``StreamCatalog``); `nil` when it is still empty.
    func identify(patient: Bool) async throws -> StreamCatalog.Decision? {
        let file = self.file, catalog = self.catalog, io = self.io
        let settleBefore = FileStatus.now - Int64(options.rotateWait.nanoseconds)
        let maximumLineBytes = options.maximumLineBytes
        do {
            return try await io.run { () throws -> StreamCatalog.Decision? in
                let head = try file.head(StreamName.headLimit)
                guard !head.isEmpty else { return nil }
                let candidates = catalog.candidates(for: head)
                let scan: ContentScan
                if candidates.isEmpty {
                    scan = ContentScan(lines: 0, reached: [:], quiet: true, complete: false)
                } else {
                    scan = try io.withScratch(1 << 20) { scratch in
                        try ContentScanner.scan(
                            file, stops: StreamCatalog.stops(for: candidates), maximumLineBytes: maximumLineBytes,
                            settled: settleBefore, scratch: scratch)
                    }
                }
                return catalog.decide(file.key, head: head, scan: scan, candidates: candidates, patient: patient)
            }
        } catch is InputFile.Incomplete {
            // A gzip file being written: followed, it is looked at again; a one-shot run leaves it for the next.
            if options.follow { return .undecided }
            report(.unfinishedCompressedFile(path: file.path))
            throw Unfinished()
        }
    }

    /// A one-shot run met a gzip file that is not finished: the file is left, the run goes on.
    struct Unfinished: Error {}

    /// ``run(from:)``, for a file that is not identified yet.
    func identifyAndRun() async throws -> SourceTotals {
        do { return try await run(from: try await identify(patient: true)) } catch is Unfinished { return SourceTotals() }
    }

    /// Whether one of the file's candidate streams was first read from it (identified first at a start).
    func isOriginOfACandidate() async -> Bool {
        let file = self.file, catalog = self.catalog
        return (try? await io.run { () throws -> Bool in
            let head = try file.head(StreamName.headLimit)
            return catalog.isOrigin(file.key, of: catalog.candidates(for: head))
        }) ?? false
    }

    // MARK: - Shipping

    private enum Ending { case ended, cut, gone }

    /// Ships the file from `decision` (what ``identify(patient:)`` said at the start) until it ends.
    func run(from decision: StreamCatalog.Decision?) async throws -> SourceTotals {
        do { return try await ship(from: decision) } catch is Unfinished { return SourceTotals() }
    }

    private func ship(from decision: StreamCatalog.Decision?) async throws -> SourceTotals {
        var totals = SourceTotals()
        var decision = decision
        defer { file.close() }
        while !Task.isCancelled {
            switch decision {
            case .resume(let stream, let messages, let digest, let offset)?:
                totals.skipped += messages
                report(.resumed(path: file.path, stream: stream, skipped: messages))
                let framer = LineFramer(maximumLineBytes: options.maximumLineBytes, continuingAfter: messages, digest: digest, at: offset)
                switch try await ship(stream, framer: framer, totals: &totals) {
                case .ended, .gone:
                    catalog.release(stream, by: key)
                    return totals
                case .cut:
                    catalog.release(stream, by: key)
                    decision = nil
                }
            case .fresh?:
                let head = try await io.run { [file] in try file.head(StreamName.headLimit) }
                let stream = catalog.freshName(head: head, file: key)
                report(.started(path: file.path, stream: stream))
                switch try await ship(stream, framer: LineFramer(maximumLineBytes: options.maximumLineBytes), totals: &totals) {
                case .ended, .gone:
                    catalog.release(stream, by: key)
                    return totals
                case .cut:
                    catalog.release(stream, by: key)
                    decision = nil
                }
            case .copy?:
                report(.alreadyShipped(path: file.path))
                guard options.follow else { return totals }
                // Nothing of it is new; look again if it grows.
                let size = file.status()?.size ?? 0
                while !Task.isCancelled, (file.status()?.size ?? 0) == size {
                    if !inView { return totals }
                    await wakeup.wait()
                }
                decision = try await identify(patient: true)
            case .owned?, .undecided?, nil:
                // Empty, shorter than a stream it may become, or continuing another file's stream: look again
                // when it changes, and now and then (an owner letting go, the settle time passing).
                if !options.follow, decision == nil { return totals }  // an empty file a one-shot run leaves
                if options.follow && !inView && decision == nil { return totals }
                await wakeup.wait(until: .now + .milliseconds(100))
                let patient = !options.follow || ContinuousClock.now - firstSeen < options.rotateWait
                decision = try await identify(patient: patient)
            }
        }
        return totals
    }

    /// Reads and sends on `name` until the end (one-shot), the file is cut, or it is gone and quiet. The
    /// stream is opened when there is a line to send, and closed while the file is idle.
    private func ship(_ name: String, framer start: LineFramer, totals: inout SourceTotals) async throws -> Ending {
        var framer = start
        let file = self.file, io = self.io, block = options.blockSize, follow = options.follow
        var stream: LinkStream?
        try await io.run { try io.withScratch(block) { try file.seek(to: start.completedBytes, scratch: $0) } }
        var lastGrowth = ContinuousClock.now
        defer { if let stream { client.finishStream(stream) } }
        while true {
            try Task.checkCancellation()
            let (outcome, framed, batch) = try await io.run { [framer] () throws -> (ReadOutcome, LineFramer, LinkBatch) in
                var framer = framer
                // Checked before every read: content cut and refilled past where reading stopped must not be
                // read from the middle.
                if follow && !file.isCompressed && !file.stillHoldsWhatWasRead() { return (.cut, framer, LinkBatch(capacity: 0)) }
                return try io.withScratch(block) { scratch in
                    var batch = LinkBatch(capacity: 0)
                    do {
                        let n = try file.read(upTo: block, into: scratch) { bytes in
                            batch = LinkBatch(capacity: bytes.count + bytes.count / 4 + 64)
                            _ = framer.frame(bytes, into: &batch)
                        }
                        return (n > 0 ? .grew : .end, framer, batch)
                    } catch is InputFile.Incomplete {
                        return (.unfinished, framer, batch)
                    }
                }
            }
            framer = framed
            switch outcome {
            case .cut:
                report(.truncated(path: file.path))
                framer.dropPartialLine()
                file.rewind()
                return .cut
            case .grew:
                try await send(batch, on: &stream, name: name, framer: &framer, totals: &totals)
                lastGrowth = .now
                continue
            case .end where !follow || file.isCompressed:
                // A last line without its newline: complete only once nothing has touched the file for a while
                // (a writer may be in the middle of it), or in a finished gzip file.
                let quietFor = FileStatus.now - (file.status()?.modified ?? 0)
                if framer.hasPartialLine && (file.isCompressed || quietFor >= options.rotateWait.nanoseconds) {
                    var last = LinkBatch(capacity: 4096)
                    framer.finish(into: &last)
                    try await send(last, on: &stream, name: name, framer: &framer, totals: &totals)
                }
                if !follow { return .ended }
            case .unfinished where !follow:
                report(.unfinishedCompressedFile(path: file.path))
                return .ended
            case .end, .unfinished:
                break
            }
            let idle = ContinuousClock.now - lastGrowth
            if let open = stream, idle >= Self.idleClose {
                // Idle: its stream is closed (once acknowledged) so thousands of quiet files hold no stream.
                client.finishStream(open)
                stream = nil
            }
            catalog.ownerLeaving(name, by: key, !inView)
            if !inView && idle >= options.rotateWait { return .gone }
            var deadline: ContinuousClock.Instant?
            if stream != nil { deadline = lastGrowth + Self.idleClose }
            if !inView { deadline = min(deadline ?? lastGrowth + options.rotateWait, lastGrowth + options.rotateWait) }
            await wakeup.wait(until: deadline)
        }
    }

    private enum ReadOutcome { case grew, end, cut, unfinished }

    /// How long a followed file may stay quiet before its stream is closed (it is reopened when it grows).
    static let idleClose: Duration = .seconds(2)

    /// Sends a batch, opening the stream first when it is closed: it must stand where this file's lines before
    /// the batch end.
    private func send(_ batch: LinkBatch, on stream: inout LinkStream?, name: String, framer: inout LineFramer, totals: inout SourceTotals) async throws {
        for cut in framer.takeTruncated() {
            report(.lineCut(path: file.path, line: cut.line, bytes: cut.bytes, limit: options.maximumLineBytes))
        }
        guard !batch.isEmpty else { return }
        if stream == nil {
            let before = framer.lines - UInt64(batch.count)
            let (opened, mark) = try await client.openStream(name)
            guard mark.sequence == before else {
                throw SourceError("stream \(name) of \(file.path): the server holds \(mark.sequence) lines of it, where this sender sent \(before)")
            }
            stream = opened
        }
        totals.sent += UInt64(batch.count)
        catalog.shipped(name, messages: framer.lines, digest: framer.digest)
        try await client.send(batch, on: stream!)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
