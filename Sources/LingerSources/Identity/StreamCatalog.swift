public import LingerLink
import Synchronization

/// Which stream each file is: every stream the server held for this client when the sender started, every
/// stream this sender has shipped since, and which file ships each one now.
///
/// A file is matched by content, never by path or inode alone (see `docs/LINK-PROTOCOL.md`, "How `linger
/// send` knows a file"):
/// 1. Its head names the candidates: the streams whose name's head fingerprint the file begins with.
/// 2. One pass over the file (a ``ContentScan``) gives its digest at each candidate's mark. A candidate whose
///    digest the file reproduces *is* the file's first lines: the file continues it, and only what follows
///    is sent. Several may verify (a stream that is a prefix of another); the one the file was first read
///    from (the name's file hint) wins, then the longest.
/// 3. A file whose whole content is a verified prefix of a stream this sender shipped is a copy of what was
///    shipped (a `.gz` of a rotated file, copytruncate's copy): nothing of it is sent until it grows.
/// 4. A file shorter than a candidate it may yet grow into is not decided until it grows or has been quiet.
/// 5. Anything else is new content and gets a fresh name.
///
/// One file at a time owns a stream. A file that continues a stream another file owns waits (copytruncate's
/// copy appears just before its original is cut, and continues the stream from there once the cut is seen)
/// but only for a while: a new generation of a banner log begins like the last one and must not wait for it.
public final class StreamCatalog: Sendable {
    /// One stream as the sender knows it.
    struct Entry: Sendable {
        var name: StreamName
        /// Lines held (the server's mark) or sent by this sender, whichever is later.
        var messages: UInt64
        var digest: UInt64
        var check: UInt64
        /// The file shipping it now.
        var owner: FileKey?
        /// Its owner has left the sender's view (renamed away, deleted) and lets go once it has been quiet.
        var ownerLeaving = false
        /// (lines, digest) after recent batches this sender sent: how a copy of part of it is recognised.
        var checkpoints: [(messages: UInt64, digest: UInt64)] = []
        /// Shipped by this sender (not only known from the server).
        var local = false
    }

    /// What to do with a file.
    public enum Decision: Sendable, Equatable {
        /// It continues `stream` after `messages` lines, which end at byte `offset`; their digest is `digest`.
        case resume(stream: String, messages: UInt64, digest: UInt64, offset: Int64)
        /// New content: ship it all, under a name from ``StreamCatalog/freshName(head:file:)``.
        case fresh
        /// It holds nothing that `stream` lacks; look again when it grows.
        case copy(of: String)
        /// It continues `stream`, which another file ships now: look again when that file lets go of it (or,
        /// after a while, take it as new content).
        case owned(stream: String, by: FileKey)
        /// Shorter than a stream it may still become: look again when it grows, or once it has been quiet.
        case undecided
    }

    fileprivate struct State {
        var entries: [String: Entry] = [:]
        /// Head length → head hash → names.
        var byHead: [Int: [UInt64: [String]]] = [:]
        /// Every name known or given out: a name is never given to two contents.
        var taken: Set<String> = []
    }

    private let state = Mutex(State())
    public let maximumLineBytes: Int

    /// - Parameters:
    ///   - known: the streams the server holds for this client (``LinkClient/knownStreams``).
    public init(known: [LinkStreamMark], maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
        state.withLock { state in
            for mark in known {
                state.taken.insert(mark.stream)
                guard let name = StreamName(parsing: mark.stream) else { continue }
                state.add(Entry(name: name, messages: mark.sequence, digest: mark.digest, check: mark.check), named: mark.stream)
            }
        }
    }

    // MARK: - Candidates

    /// A candidate stream and what a scan must reach to judge it.
    public struct Candidate: Sendable {
        public var stream: String
        var entry: Entry
    }

    /// The streams a file with this head may continue or copy.
    public func candidates(for head: [UInt8]) -> [Candidate] {
        guard !head.isEmpty else { return [] }
        let prefixes = HeadHashes.prefixes(of: head)
        return state.withLock { state in
            var found: [Candidate] = []
            for (length, byHash) in state.byHead where length <= prefixes.count {
                for name in byHash[prefixes[length - 1]] ?? [] {
                    if let entry = state.entries[name] { found.append(Candidate(stream: name, entry: entry)) }
                }
            }
            return found
        }
    }

    /// Whether one of these candidates was first read from `file` (such files are identified first at start).
    public func isOrigin(_ file: FileKey, of candidates: [Candidate]) -> Bool {
        candidates.contains { $0.entry.name.wasRead(from: file) }
    }

    /// The line counts at which a scan must note its digest to judge these candidates.
    public static func stops(for candidates: [Candidate]) -> [UInt64] {
        var counts: Set<UInt64> = []
        for candidate in candidates {
            counts.insert(candidate.entry.messages)
            for point in candidate.entry.checkpoints { counts.insert(point.messages) }
        }
        counts.remove(0)
        return counts.sorted()
    }

    // MARK: - Deciding

    /// Decides what `file` is, given its scan against `candidates`, and claims a stream it resumes (the
    /// stream becomes the file's). Candidates that changed since the scan (a
    /// stream grew, an owner let go) are judged as they are now: a scan that no longer reaches them says so.
    /// - Parameters:
    ///   - patient: false once the file has waited long enough for an owner; it then decides for itself.
    public func decide(_ file: FileKey, head: [UInt8], scan: ContentScan, candidates: [Candidate], patient: Bool) -> Decision {
        state.withLock { state in
            let current = candidates.compactMap { candidate in state.entries[candidate.stream].map { Candidate(stream: candidate.stream, entry: $0) } }
            let decision = Self.judge(file, scan: scan, candidates: current, patient: patient)
            switch decision {
            case .resume(let stream, let messages, let digest, _):
                state.entries[stream]!.owner = file
                state.entries[stream]!.messages = messages
                state.entries[stream]!.digest = digest
            default:
                break
            }
            return decision
        }
    }

    /// The rule itself, on a snapshot: pure, so every case is tested without files.
    static func judge(_ file: FileKey, scan: ContentScan, candidates: [Candidate], patient: Bool) -> Decision {
        var verified: [Candidate] = []
        var prefixOf: [Candidate] = []
        var mayGrowInto = false
        for candidate in candidates {
            let entry = candidate.entry
            if entry.messages == 0 { continue }
            if scan.lines >= entry.messages || scan.reached[entry.messages] != nil {
                guard let point = scan.reached[entry.messages] else { continue }
                let same = entry.digest != 0 ? point.digest == entry.digest : (entry.check == 0 || point.check == entry.check)
                if same { verified.append(candidate) }
                continue
            }
            // Shorter than the stream: a copy of its beginning, if the last checkpoint within the file matches.
            if let point = entry.checkpoints.last(where: { $0.messages <= scan.lines }), point.messages > 0,
                scan.reached[point.messages]?.digest == point.digest, scan.complete
            {
                prefixOf.append(candidate)
            } else {
                mayGrowInto = true
            }
        }
        if let best = verified.max(by: { rank($0, file) < rank($1, file) }) {
            let entry = best.entry
            if let owner = entry.owner, owner != file {
                // An owner on its way out (a rotated file gzip just replaced) lets go soon: wait for it.
                if patient || entry.ownerLeaving { return .owned(stream: best.stream, by: owner) }
                // Waited long enough: a file that holds that stream and nothing more is a copy of it; one that
                // goes on beyond it and is not its original being cut is new content that begins alike.
                if scan.complete && scan.lines == entry.messages { return .copy(of: best.stream) }
            } else {
                let point = scan.reached[entry.messages]!
                return .resume(stream: best.stream, messages: entry.messages, digest: point.digest, offset: point.end)
            }
        }
        if let copied = prefixOf.max(by: { $0.entry.messages < $1.entry.messages }) {
            if let owner = copied.entry.owner, owner != file {
                if patient || copied.entry.ownerLeaving { return .owned(stream: copied.stream, by: owner) }
            } else {
                return .copy(of: copied.stream)
            }
        }
        if mayGrowInto && !scan.quiet { return .undecided }
        return .fresh
    }

    /// The file's own stream first, then the one that covers the most.
    private static func rank(_ candidate: Candidate, _ file: FileKey) -> (Int, UInt64) {
        (candidate.entry.name.wasRead(from: file) ? 1 : 0, candidate.entry.messages)
    }

    // MARK: - Shipping

    /// A name for new content that no stream has had, owned by `file` from now on.
    public func freshName(head: [UInt8], file: FileKey) -> String {
        state.withLock { state in
            var name = StreamName(head: head, file: file)
            while state.taken.contains(name.description) { name.discriminator += 1 }
            state.taken.insert(name.description)
            state.add(Entry(name: name, messages: 0, digest: LinkContentDigest.empty, check: 0, owner: file, local: true), named: name.description)
            return name.description
        }
    }

    /// Lines sent on a stream the file owns: the stream's content now.
    public func shipped(_ stream: String, messages: UInt64, digest: UInt64) {
        state.withLock { state in
            guard var entry = state.entries[stream] else { return }
            entry.messages = messages
            entry.digest = digest
            entry.local = true
            if entry.checkpoints.last?.messages != messages {
                entry.checkpoints.append((messages, digest))
                // The first few (a banner's), and the recent ones (a copy is taken of the end).
                if entry.checkpoints.count > 72 { entry.checkpoints.remove(at: 8) }
            }
            state.entries[stream] = entry
        }
    }

    /// The file no longer ships `stream` (it was cut, or it is gone): another may continue it.
    public func release(_ stream: String, by file: FileKey) {
        state.withLock { state in
            guard state.entries[stream]?.owner == file else { return }
            state.entries[stream]!.owner = nil
            state.entries[stream]!.ownerLeaving = false
        }
    }

    /// Whether the file shipping `stream` has left the sender's view (it lets go of it soon).
    public func ownerLeaving(_ stream: String, by file: FileKey, _ leaving: Bool) {
        state.withLock { state in
            if state.entries[stream]?.owner == file { state.entries[stream]!.ownerLeaving = leaving }
        }
    }

    /// Who ships `stream` now.
    public func owner(of stream: String) -> FileKey? { state.withLock { $0.entries[stream]?.owner } }
}

extension StreamCatalog.State {
    fileprivate mutating func add(_ entry: StreamCatalog.Entry, named name: String) {
        entries[name] = entry
        byHead[entry.name.headLength, default: [:]][entry.name.headHash, default: []].append(name)
    }
}

/// One pass over a file's content as a sender frames it: how many complete lines, and the digest (and the
/// last line's fingerprint) at each line count a ``StreamCatalog`` asked for.
public struct ContentScan: Sendable {
    /// Complete lines (for a file that will not grow, a last line without its newline counts).
    public var lines: UInt64
    public var reached: [UInt64: (digest: UInt64, check: UInt64, end: Int64)]
    /// Whether the file has not changed for the settle time (an undecided file is then decided).
    public var quiet: Bool
    /// Whether the scan read the whole file as it is (false: stopped at the last count asked for).
    public var complete: Bool

    public init(lines: UInt64, reached: [UInt64: (digest: UInt64, check: UInt64, end: Int64)], quiet: Bool, complete: Bool) {
        self.lines = lines
        self.reached = reached
        self.quiet = quiet
        self.complete = complete
    }
}
