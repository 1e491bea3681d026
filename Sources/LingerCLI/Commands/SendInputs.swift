#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import LingerLink
import LingerSources

/// `--file` (repeatable, globs): each file a stream named by its content; with `--follow`, each path is
/// followed through rotation, and globs are expanded again every few seconds for new files.
struct FileInputs: ShippedInput {
    let patterns: [String]
    let client: LinkClient
    let io: SourceIO
    let options: FileInputOptions
    let registry = StreamRegistry()

    /// Files read at once without `--follow`: each holds a descriptor and a read buffer until it ends, so a
    /// glob of thousands is read a few dozen at a time (all at once, 1,500 files hit EMFILE at the usual
    /// limit of 1024 and 2 of them were shipped). Followed files all stay open: each waits for its growth.
    static let filesAtOnce = 32

    private enum Step: Sendable {
        case shipped(SourceTotals)
        /// Time to expand the globs again (following only).
        case rescan
    }

    func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        // Input that cannot be read is refused before connecting: a missing file must not hide behind
        // "cannot connect" warnings while the server is down, and no retry makes it appear.
        // Globs are expanded on the sources' threads (glob(3) reads directories), once for the check and the
        // first start together.
        let patterns = self.patterns, follow = options.follow
        let firstPaths = try await io.run { try Self.checked(patterns, follow: follow) }
        _ = try await client.start()  // the streams the server knows decide what each file resumes
        var started = Set<String>()
        var waiting: [String] = []
        var reading = 0
        var totals = SourceTotals()
        try await withThrowingTaskGroup(of: Step.self) { group in
            func startWaiting() {
                while !waiting.isEmpty && (options.follow || reading < Self.filesAtOnce) {
                    let path = waiting.removeFirst()
                    reading += 1
                    group.addTask { .shipped(try await shipPath(path, report: report)) }
                }
            }
            func startNew(_ paths: [String]) {
                waiting += paths.filter { started.insert($0).inserted }
                startWaiting()
                // New files matching a glob (a new log in the directory) are picked up every 5 s.
                if options.follow {
                    group.addTask {
                        try await Task.sleep(for: .seconds(5))
                        return .rescan
                    }
                }
            }
            startNew(firstPaths)
            while let step = try await group.next() {
                switch step {
                case .shipped(let part):
                    totals.sent += part.sent
                    totals.skipped += part.skipped
                    reading -= 1
                    startWaiting()
                case .rescan:
                    startNew(try await io.run { try Self.expand(patterns, mustMatch: false) })
                }
            }
        }
        return totals
    }

    /// One path: first the unshipped rest of its rotated copies (oldest first), then the path itself.
    private func shipPath(_ path: String, report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        var totals = SourceTotals()
        let rotated = try await io.run { RotatedFiles.siblings(of: path) }
        let known = client.knownStreams
        // Copies older than the oldest one the server knows are history from before this sender; from that
        // one on, each copy continues a stream or holds content rotated away while the sender was down.
        var heads: [[UInt8]] = []
        for copy in rotated {
            heads.append(try await io.run { try InputFile.open(copy)?.head(StreamName.headLimit) ?? [] })
        }
        if let oldest = heads.firstIndex(where: { !StreamName.candidates(for: $0, among: known).isEmpty }) {
            var once = options
            once.follow = false
            for copy in rotated[oldest...] {
                let part = try await FollowedFile(path: copy, client: client, io: io, options: once, registry: registry, report: report).run()
                totals.sent += part.sent
                totals.skipped += part.skipped
            }
        }
        let live = try await FollowedFile(path: path, client: client, io: io, options: options, registry: registry, report: report).run()
        totals.sent += live.sent
        totals.skipped += live.skipped
        return totals
    }

    /// The paths the patterns name now, after throwing for the first that cannot be shipped: a glob matching
    /// nothing or a path that does not exist (unless followed: it may appear later), a directory, a file this
    /// user may not read.
    private static func checked(_ patterns: [String], follow: Bool) throws -> [String] {
        let paths = try expand(patterns, mustMatch: !follow)
        for path in paths {
            let exists = try InputFile.checkReadable(path)
            if !exists && !follow { throw SourceError("\(path) does not exist") }
        }
        return paths
    }

    /// Paths matching the patterns, in order; a pattern without wildcards names a path even if it does not
    /// exist yet (followed paths may appear later).
    private static func expand(_ patterns: [String], mustMatch: Bool) throws -> [String] {
        var paths: [String] = []
        for pattern in patterns {
            guard pattern.contains(where: { "*?[".contains($0) }) else {
                paths.append(pattern)
                continue
            }
            var result = glob_t()
            defer { globfree(&result) }
            let status = glob(pattern, 0, nil, &result)
            if status == GLOB_NOMATCH {
                if mustMatch { throw SourceError("no file matches \(pattern)") }
                continue
            }
            guard status == 0 else { throw SourceError("cannot expand \(pattern)") }
            for i in 0..<Int(result.gl_pathc) {
                if let path = result.gl_pathv[i] { paths.append(String(cString: path)) }
            }
        }
        return paths
    }
}

/// Stdin without a spool: one unnamed stream numbered by line position, so the same input piped again with
/// the same client id continues where the server stands.
struct StandardInput: ShippedInput {
    let client: LinkClient
    let io: SourceIO
    let maximumLineBytes: Int

    func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
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

/// Reads a descriptor that cannot seek (a pipe, a terminal).
final class DescriptorReader: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    /// Up to `count` bytes (empty at the end of the input), or nil when nothing arrived within `wait`: a read
    /// that blocks on a thread cannot be cancelled, so the caller waits in slices and checks for
    /// cancellation (SIGINT, SIGTERM) between them.
    func read(upTo count: Int, waitMilliseconds wait: Int32 = 200) throws -> [UInt8]? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, wait)
        if polled == 0 || (polled < 0 && errno == EINTR) { return nil }
        return try readNow(upTo: count)
    }

    /// As ``read(upTo:waitMilliseconds:)``, then more while more is ready at once, up to `gathering` bytes,
    /// each read straight into the one buffer returned (gathering 4 MiB from 256 KiB arrays copied each twice).
    func read(upTo count: Int, gathering limit: Int) throws -> [UInt8]? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, 200)
        if polled == 0 || (polled < 0 && errno == EINTR) { return nil }
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: max(limit, count)) { buffer, filled in
            filled = 0
            while filled + count <= buffer.count {
                if filled > 0 {
                    ready.revents = 0
                    guard poll(&ready, 1, 0) > 0 else { break }
                }
                let n = Glibc.read(fd, buffer.baseAddress! + filled, count)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }
                filled += n
            }
        }
        if failure != 0 && bytes.isEmpty { throw SourceError("cannot read the input: \(String(cString: strerror(failure)))") }
        return bytes
    }

    private func readNow(upTo count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var n: Int
        repeat { n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } } while n < 0 && errno == EINTR
        if n < 0 { throw SourceError("cannot read the input: \(String(cString: strerror(errno)))") }
        return n == count ? buffer : Array(buffer[0..<n])
    }
}
