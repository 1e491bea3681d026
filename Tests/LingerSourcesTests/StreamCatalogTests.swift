import LingerLink
@testable import LingerSources
import Testing

/// The rule that says which stream a file is, on hand-made scans: no files needed.
struct StreamCatalogTests {
    let a = FileKey(device: 1, inode: 10), b = FileKey(device: 1, inode: 20), c = FileKey(device: 1, inode: 30)

    private func digest(_ text: String) -> UInt64 { Array(text.utf8).withUnsafeBytes { LinkContentDigest.extend(0, withLines: $0) } }

    private func entry(_ name: StreamName, _ text: String, owner: FileKey? = nil, checkpoints: [String] = []) -> StreamCatalog.Candidate {
        let lines = UInt64(text.split(separator: "\n", omittingEmptySubsequences: false).count - 1)
        var entry = StreamCatalog.Entry(name: name, messages: lines, digest: digest(text), check: 0, owner: owner)
        entry.checkpoints = checkpoints.map { (UInt64($0.split(separator: "\n", omittingEmptySubsequences: false).count - 1), digest($0)) }
        return StreamCatalog.Candidate(stream: name.description, entry: entry)
    }

    /// A scan of `text`, noting the digest at every line count.
    private func scan(_ text: String, quiet: Bool = true) -> ContentScan {
        var reached: [UInt64: (digest: UInt64, check: UInt64, end: Int64)] = [:]
        var so = ""
        var count: UInt64 = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            so += line + "\n"
            count += 1
            reached[count] = (digest(so), 0, Int64(so.utf8.count))
        }
        return ContentScan(lines: count, reached: reached, quiet: quiet, complete: true)
    }

    @Test func aFileThatReproducesTheDigestResumesAfterIt() {
        let s = entry(StreamName(head: Array("banner\n".utf8)), "banner\nl1\nl2\n")
        #expect(StreamCatalog.judge(a, scan: scan("banner\nl1\nl2\nl3\n"), candidates: [s], patient: true)
            == .resume(stream: s.stream, messages: 3, digest: digest("banner\nl1\nl2\n"), offset: 13))
    }

    @Test func anEmptyLineAtTheMarkIsNoProof() {
        let s = entry(StreamName(head: Array("banner\n".utf8)), "banner\nrecord 1\n\n")
        #expect(StreamCatalog.judge(a, scan: scan("banner\nrecord 9\n\nrecord 10\n"), candidates: [s], patient: true) == .fresh)
    }

    /// Two generations of a banner log: the one that got only the banner, and the next, which begins with it.
    @Test func theStreamOfTheFileItWasReadFromWinsOverAFileThatBeginsWithIt() {
        let bannerOnly = entry(StreamName(head: Array("banner\n".utf8), file: a), "banner\n")
        #expect(StreamCatalog.judge(a, scan: scan("banner\n"), candidates: [bannerOnly], patient: true)
            == .resume(stream: bannerOnly.stream, messages: 1, digest: digest("banner\n"), offset: 7))
        var claimed = bannerOnly
        claimed.entry.owner = a
        #expect(StreamCatalog.judge(b, scan: scan("banner\nnext gen\n"), candidates: [claimed], patient: true) == .owned(stream: claimed.stream, by: a))
        #expect(StreamCatalog.judge(b, scan: scan("banner\nnext gen\n"), candidates: [claimed], patient: false) == .fresh,
                "after a while it is new content, not a copy of the other file")
        #expect(StreamCatalog.judge(b, scan: scan("banner\n"), candidates: [claimed], patient: false) == .copy(of: claimed.stream),
                "holding that stream and nothing more, it is a copy until it grows")
        claimed.entry.ownerLeaving = true
        #expect(StreamCatalog.judge(b, scan: scan("banner\nnext gen\n"), candidates: [claimed], patient: false) == .owned(stream: claimed.stream, by: a),
                "an owner on its way out is waited for")
    }

    @Test func theLongestVerifiedStreamIsTheOneContinued() {
        let short = entry(StreamName(head: Array("h\n".utf8), discriminator: 0), "h\n")
        let long = entry(StreamName(head: Array("h\n".utf8), discriminator: 1), "h\nx\ny\n")
        #expect(StreamCatalog.judge(c, scan: scan("h\nx\ny\nz\n"), candidates: [short, long], patient: true)
            == .resume(stream: long.stream, messages: 3, digest: digest("h\nx\ny\n"), offset: 6))
    }

    /// copytruncate's copy and a `.gz` of a shipped file hold what was shipped, or its beginning.
    @Test func aCopyOfWhatWasShippedSendsNothing() {
        let s = entry(StreamName(head: Array("a\n".utf8)), "a\nb\nc\nd\n", checkpoints: ["a\nb\n", "a\nb\nc\nd\n"])
        #expect(StreamCatalog.judge(b, scan: scan("a\nb\nc\n"), candidates: [s], patient: true) == .copy(of: s.stream))
        var owned = s
        owned.entry.owner = a
        #expect(StreamCatalog.judge(b, scan: scan("a\nb\nc\n"), candidates: [owned], patient: true) == .owned(stream: s.stream, by: a),
                "its original is still being read: wait until it is cut")
        #expect(StreamCatalog.judge(b, scan: scan("a\nb\nc\nd\n"), candidates: [s], patient: true)
            == .resume(stream: s.stream, messages: 4, digest: digest("a\nb\nc\nd\n"), offset: 8), "all of it: nothing after, the stream is its")
    }

    /// A truncated CSV refilled with fewer rows than before: it may still grow into the old stream, until it
    /// has been quiet.
    @Test func aShorterFileWaitsUntilItIsQuietThenIsNewContent() {
        let s = entry(StreamName(head: Array("h1,h2\n".utf8)), "h1,h2\n1\n2\n3\n")
        #expect(StreamCatalog.judge(a, scan: scan("h1,h2\n9\n", quiet: false), candidates: [s], patient: true) == .undecided)
        #expect(StreamCatalog.judge(a, scan: scan("h1,h2\n9\n", quiet: true), candidates: [s], patient: true) == .fresh)
    }

    @Test func aHeadIsLookedUpAmongThousandsOfStreamsAndFreshNamesNeverRepeat() {
        var known: [LinkStreamMark] = []
        for n in 0..<5000 { known.append(LinkStreamMark(stream: StreamName(head: Array("file \(n)\n".utf8)).description, sequence: 1, check: 0)) }
        let header = StreamName(head: Array("h\n".utf8), file: a)
        known.append(LinkStreamMark(stream: header.description, sequence: 1, check: 0))
        let catalog = StreamCatalog(known: known, maximumLineBytes: 100)
        #expect(catalog.candidates(for: Array("file 42\nmore".utf8)).map(\.stream) == [StreamName(head: Array("file 42\n".utf8)).description])
        let first = catalog.freshName(head: Array("h\n".utf8), file: a), second = catalog.freshName(head: Array("h\n".utf8), file: a)
        #expect(first != header.description && second != first && first.hasSuffix("-1") && second.hasSuffix("-2"))
    }
}
