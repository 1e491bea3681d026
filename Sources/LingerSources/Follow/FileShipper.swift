public import LingerLink
import NIOConcurrencyHelpers

/// How files are read.
public struct FileInputOptions: Sendable {
    /// Keep reading what is appended, through rotation (like `tail -F`), until cancelled.
    public var follow: Bool
    /// After a file has left the sender's view (renamed away, deleted), how long it is still read: it is
    /// finished once it has not grown for this long. Also how long a file must be quiet before a last line
    /// without its newline counts as a line (without `follow`), or before a file that may still grow into a
    /// known stream is taken as new content.
    public var rotateWait: Duration
    public var maximumLineBytes: Int
    /// Bytes read at a time.
    public var blockSize: Int
    /// How often the patterns are looked at again when nothing has been heard from inotify (a filesystem
    /// that does not report changes, such as NFS written from another host).
    public var rescanInterval: Duration
    /// `--rotated-glob`: rotated copies that are named in no way linger recognises.
    public var rotatedGlobs: [String]

    public init(follow: Bool = false, rotateWait: Duration = .seconds(1), maximumLineBytes: Int = 16 << 20, blockSize: Int = 256 << 10,
                rescanInterval: Duration = .seconds(5), rotatedGlobs: [String] = []) {
        self.follow = follow
        self.rotateWait = rotateWait
        self.maximumLineBytes = maximumLineBytes
        self.blockSize = blockSize
        self.rescanInterval = rescanInterval
        self.rotatedGlobs = rotatedGlobs
    }
}

/// What one input delivered.
public struct SourceTotals: Sendable {
    /// Lines read and queued for the server.
    public var sent: UInt64 = 0
    /// Lines the server already held (a resumed stream).
    public var skipped: UInt64 = 0
    public init() {}

    mutating func add(_ other: SourceTotals) {
        sent += other.sent
        skipped += other.skipped
    }
}

/// `linger send --file` (repeatable, globs): every file the patterns name, and their rotated copies, each
/// shipped by a ``FileHarvester`` as the stream its content is (``StreamCatalog``).
///
/// Without `follow`, each file is read to its end, a few dozen at a time. With `follow`, the directories are
/// watched with inotify (``DirectoryWatch``): a new file is read the moment it appears, a write wakes only
/// the file written, and a rename or a deletion makes the patterns be looked at again; a rescan every
/// `rescanInterval` is the fallback.
///
/// At a start, the rotated copies beside a log are shipped from the oldest one that continues a stream the
/// server knows: copies older than that are history from before this sender, and are left alone (at a
/// first start, all of them). A copy that appears while the sender runs is always read.
public struct FileShipper: ShippedInput {
    let patterns: [String]
    let client: LinkClient
    let io: SourceIO
    let options: FileInputOptions

    /// Groups read at once without `follow`: each file holds a descriptor until it ends, so a glob of
    /// thousands is read a few dozen at a time.
    static let groupsAtOnce = 32

    public init(patterns: [String], client: LinkClient, io: SourceIO, options: FileInputOptions) {
        self.patterns = patterns
        self.client = client
        self.io = io
        self.options = options
    }

    /// Input that cannot be read is refused before connecting (``Shipment`` asks first): a missing file must
    /// not hide behind "cannot connect" warnings while the server is down, and no retry makes it appear.
    public func check() async throws {
        let patterns = self.patterns, follow = options.follow
        try await io.run { try Self.check(patterns, follow: follow) }
    }

    public func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals {
        let patterns = self.patterns, follow = options.follow, rotated = options.rotatedGlobs
        _ = try await client.start()  // the streams the server knows decide what each file resumes
        let catalog = StreamCatalog(known: client.knownStreams, maximumLineBytes: options.maximumLineBytes)
        let view = try await io.run { SourceView.scan(patterns: patterns, rotatedGlobs: rotated) }
        let context = Context(client: client, io: io, catalog: catalog, options: options, report: report)
        return follow ? try await context.follow(view, patterns: patterns) : try await context.readOnce(view)
    }

    /// Throws for the first pattern that cannot be shipped: a glob matching nothing or a path that does not
    /// exist (unless followed: it may appear later), a directory, a file this user may not read.
    static func check(_ patterns: [String], follow: Bool) throws {
        for pattern in patterns {
            let paths = SourceView.expand(pattern)
            if pattern.contains(where: { "*?[".contains($0) }) && paths.isEmpty {
                if follow { continue }
                throw SourceError("no file matches \(pattern)")
            }
            for path in paths where try !InputFile.checkReadable(path) && !follow {
                throw SourceError("\(path) does not exist")
            }
        }
    }
}

/// What every harvester of one run shares, and how files become harvesters.
private struct Context: Sendable {
    let client: LinkClient
    let io: SourceIO
    let catalog: StreamCatalog
    let options: FileInputOptions
    let report: @Sendable (SourceEvent) -> Void

    /// A log and its rotated copies: identified together at a start, so the history rule can see them all.
    struct Group {
        var files: [SourceView.File]
    }

    static func groups(of view: SourceView) -> [Group] {
        var byBase: [String: [SourceView.File]] = [:]
        for file in view.files.values.sorted(by: { $0.path < $1.path }) { byBase[file.base ?? "", default: []].append(file) }
        return byBase.keys.sorted().map { Group(files: byBase[$0]!) }
    }

    func harvester(for file: SourceView.File) async throws -> FileHarvester? {
        let path = file.path
        guard let input = try? await io.run({ try InputFile.open(path) }) else { return nil }
        guard input.key == file.status.key else {
            // Renamed or replaced between the scan and the open: the next scan sees it as it is.
            input.close()
            return nil
        }
        return FileHarvester(file: input, matched: file.matched, client: client, io: io, catalog: catalog, options: options, report: report)
    }

    /// Opens and identifies a group's files as a start does: the files whose stream a candidate was first read
    /// from go first (so a file that merely begins with another's whole content does not take its stream),
    /// then the others; rotated copies that would be new content older than the oldest copy continuing a
    /// known stream are left alone.
    func start(_ group: Group) async throws -> [(FileHarvester, StreamCatalog.Decision?)] {
        var opened: [FileHarvester] = []
        for file in group.files {
            if let harvester = try await harvester(for: file) { opened.append(harvester) }
        }
        var origins: [FileHarvester] = [], others: [FileHarvester] = []
        for harvester in opened { await harvester.isOriginOfACandidate() ? origins.append(harvester) : others.append(harvester) }
        var decided: [(FileHarvester, StreamCatalog.Decision?)] = []
        for harvester in origins + others {
            do { decided.append((harvester, try await harvester.identify(patient: true))) } catch is FileHarvester.Unfinished { harvester.file.close() }
        }
        let continuing = decided.compactMap { harvester, decision -> Int64? in
            if case .resume? = decision { return harvester.file.status()?.modified }
            return nil
        }
        let cutoff = continuing.min()
        return decided.filter { harvester, decision in
            guard !harvester.matched, decision == .fresh else { return true }
            if let cutoff, (harvester.file.status()?.modified ?? 0) >= cutoff { return true }
            report(.history(path: harvester.file.path))
            harvester.file.close()
            return false
        }
    }

    // MARK: - One pass

    func readOnce(_ view: SourceView) async throws -> SourceTotals {
        var totals = SourceTotals()
        var waiting = Self.groups(of: view)[...]
        try await withThrowingTaskGroup(of: SourceTotals.self) { tasks in
            func startNext() {
                guard let group = waiting.popFirst() else { return }
                tasks.addTask {
                    var totals = SourceTotals()
                    try await withThrowingTaskGroup(of: SourceTotals.self) { files in
                        for (harvester, decision) in try await start(group) {
                            files.addTask { try await harvester.run(from: decision) }
                        }
                        for try await part in files { totals.add(part) }
                    }
                    return totals
                }
            }
            for _ in 0..<FileShipper.groupsAtOnce { startNext() }
            for try await part in tasks {
                totals.add(part)
                startNext()
            }
        }
        return totals
    }

    // MARK: - Following

    /// inotify's masks of a name that appeared: created, or moved in.
    static let arrived = DirectoryWatch.arrivals

    private enum Event: Sendable {
        case changes([DirectoryEvent])
        case rescan
        case ended(FileKey, ObjectIdentifier)
    }

    func follow(_ first: SourceView, patterns: [String]) async throws -> SourceTotals {
        let (events, post) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        let totals = NIOLockedValueBox(SourceTotals())
        let watch = await DirectoryWatch.start()
        defer { post.finish() }
        var view = first
        var harvesters: [FileKey: FileHarvester] = [:]
        var watched: Set<String> = []
        func watchDirectories() {
            guard let watch else { return }
            for directory in view.directories.subtracting(watched) where watch.watch(directory) { watched.insert(directory) }
        }
        watchDirectories()
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                func launch(_ harvester: FileHarvester, _ decision: StreamCatalog.Decision??) {
                    harvesters[harvester.key] = harvester
                    tasks.addTask {
                        var part = SourceTotals()
                        do {
                            if let decision { part = try await harvester.run(from: decision) } else { part = try await harvester.identifyAndRun() }
                        } catch is CancellationError {}
                        totals.withLockedValue { $0.add(part) }
                        post.yield(.ended(harvester.key, ObjectIdentifier(harvester)))
                    }
                }
                for group in Self.groups(of: view) {
                    for (harvester, decision) in try await start(group) { launch(harvester, .some(decision)) }
                }
                if let watch {
                    tasks.addTask { for await changes in watch.events { post.yield(.changes(changes)) } }
                }
                let interval = options.rescanInterval
                tasks.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        post.yield(.rescan)
                    }
                }
                var lastScan = ContinuousClock.now
                var rescanSoon = false
                for await event in events {
                    var rescan = false
                    switch event {
                    case .ended(let key, let which):
                        if let current = harvesters[key], ObjectIdentifier(current) == which { harvesters[key] = nil }
                    case .rescan:
                        rescanSoon = false
                        rescan = true
                    case .changes(let changes):
                        var created: [String] = []
                        for change in changes {
                            // A write wakes the file written; anything else changes names: look again.
                            if change.isWrite, let key = view.names[change.directory]?[change.name] {
                                harvesters[key]?.wakeup.signal()
                            } else {
                                rescan = true
                                if change.mask & Self.arrived != 0 { created.append(SourceView.join(change.directory, change.name)) }
                            }
                        }
                        // A new file a pattern names is opened at once, before the rescan: a log rotated away and
                        // deleted a moment later is still read through its descriptor.
                        let arrived = created
                        for (key, file) in try await io.run({ SourceView.arrivals(arrived, patterns: patterns) }) where harvesters[key] == nil {
                            if let harvester = try await harvester(for: file) { launch(harvester, nil) }
                        }
                        if rescan && ContinuousClock.now - lastScan < .milliseconds(20) {
                            // A rotation is several renames in a row: one look after them, not one per rename.
                            rescan = false
                            if !rescanSoon {
                                rescanSoon = true
                                tasks.addTask {
                                    try? await Task.sleep(for: .milliseconds(20))
                                    post.yield(.rescan)
                                }
                            }
                        }
                    }
                    guard rescan else { continue }
                    lastScan = .now
                    let rotated = options.rotatedGlobs
                    let next = try await io.run { SourceView.scan(patterns: patterns, rotatedGlobs: rotated) }
                    // A path a pattern names literally that names another file now was rotated (a glob's
                    // matches change names at every rotation, which says nothing).
                    for pattern in patterns where !pattern.contains(where: { "*?[".contains($0) }) {
                        if let before = view.matched[pattern] ?? nil, let now = next.matched[pattern] ?? nil, before != now {
                            report(.rotated(path: pattern))
                        }
                    }
                    for (key, harvester) in harvesters {
                        let seen = next.files[key]
                        harvester.inView = seen != nil
                        if seen == nil || seen!.status.size != view.files[key]?.status.size { harvester.wakeup.signal() }
                    }
                    view = next
                    watchDirectories()
                    for (key, file) in view.files where harvesters[key] == nil {
                        // A file that appeared while following: never history, whatever its name.
                        if let harvester = try await harvester(for: file) { launch(harvester, nil) }
                    }
                }
                tasks.cancelAll()
            }
        } catch is CancellationError {}
        await watch?.close()
        return totals.withLockedValue { $0 }
    }
}
