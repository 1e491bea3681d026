import LingerLink
import LingerSources
import Testing

struct LineFramerTests {
    private func frame(_ chunks: [String], limit: Int = 1 << 20, resume: (UInt64, UInt64)? = nil, finish: Bool = true) -> (lines: [String], framer: LineFramer) {
        var framer = LineFramer(maximumLineBytes: limit)
        if let resume { framer.resume(after: resume.0, check: resume.1) }
        var batch = LinkBatch()
        for chunk in chunks { Array(chunk.utf8).withUnsafeBytes { _ = framer.frame($0, into: &batch) } }
        if finish { framer.finish(into: &batch) }
        return (batch.payloads.map { String(decoding: $0, as: UTF8.self) }, framer)
    }

    @Test func linesStraddlingChunksComeOutWhole() {
        let (lines, framer) = frame(["one\ntw", "o\nthr", "ee", "\nfour"])
        #expect(lines == ["one", "two", "three", "four"])
        #expect(framer.lines == 4)
    }

    @Test func aPartialLastLineWaitsUnlessTheInputEnded() {
        let (lines, framer) = frame(["a\nb"], finish: false)
        #expect(lines == ["a"])
        #expect(framer.hasPartialLine)
    }

    @Test func aLineOverTheLimitIsCutAndReported() {
        var (lines, framer) = frame(["short\n", String(repeating: "x", count: 5), String(repeating: "y", count: 5) + "\nafter\n"], limit: 8)
        #expect(lines == ["short", "xxxxxyyy", "after"])
        let cuts = framer.takeTruncated()
        #expect(cuts.count == 1 && cuts[0].line == 2 && cuts[0].bytes == 10)
    }

    @Test func resumingSkipsTheLinesTheServerHoldsAndChecksTheLastOne() {
        let check = LinkFingerprint.fnv1a(Array("two".utf8))
        let (lines, framer) = frame(["one\ntwo\nthree\n"], resume: (2, check))
        #expect(lines == ["three"])
        #expect(!framer.resumeMismatch)
        let (_, other) = frame(["one\nTWO\nthree\n"], resume: (2, check))
        #expect(other.resumeMismatch, "a file that begins alike but differs at the mark is not that stream")
    }
}

struct StreamNameTests {
    @Test func namesRoundTripAndMatchByHead() throws {
        let head = Array("2026-11-30 first line\nsecond".utf8)
        let name = StreamName(head: head, discriminator: 2)
        let parsed = try #require(StreamName(parsing: name.description))
        #expect(parsed == name)
        #expect(name.description.hasPrefix("f\(head.count)-") && name.description.hasSuffix("-2"))
        #expect(name.matches(head: head + Array(" and more".utf8)), "a grown file still begins the same")
        #expect(!name.matches(head: Array("2026-11-30 other".utf8)))
        #expect(StreamName(parsing: "spool-0123456789abcdef") == nil)
    }

    @Test func aFreshNameSkipsTakenDiscriminators() {
        let head = Array("header\n".utf8)
        let taken: Set = [StreamName(head: head).description, StreamName(head: head, discriminator: 1).description]
        #expect(StreamName.fresh(for: head, taken: taken).discriminator == 2)
    }

    @Test func candidatesPreferTheLongestHead() {
        let content = Array("a line\nanother line\n".utf8)
        let short = StreamName(head: Array(content.prefix(7)))
        let long = StreamName(head: content)
        let known = [short, long].map { LinkStreamMark(stream: $0.description, sequence: 1, check: 0) }
        #expect(StreamName.candidates(for: content, among: known).map(\.name) == [long, short])
    }
}
