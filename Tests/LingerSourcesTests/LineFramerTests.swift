import LingerLink
import LingerSources
import Testing

struct LineFramerTests {
    private func frame(_ chunks: [String], limit: Int = 1 << 20, resume: (UInt64, UInt64)? = nil, finish: Bool = true, digest: UInt64 = 0) -> (lines: [String], framer: LineFramer) {
        var framer = LineFramer(maximumLineBytes: limit)
        if let resume { framer.resume(after: resume.0, digest: digest, check: resume.1) }
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

    /// The digest covers every line as sent, skipped or not, and equals what the sink computes from the
    /// stored lines: that is what a resume is checked against.
    @Test func theDigestIsTheSinksDigestOfTheLinesAsSent() {
        let (_, framer) = frame(["one\ntw", "o\nthree-is-long\n"], limit: 5)
        let stored = Array("one\ntwo\nthree\n".utf8)
        #expect(framer.digest == stored.withUnsafeBytes { LinkContentDigest.extend(LinkContentDigest.empty, withLines: $0) })
        #expect(framer.completedBytes == 22)
    }

    /// Records that end in an empty line: the line at the mark agrees, the content before it does not.
    @Test func aResumeIsCheckedAgainstTheWholeContentNotOneLine() {
        let shipped = Array("banner\nrecord 1\n\n".utf8)
        let digest = shipped.withUnsafeBytes { LinkContentDigest.extend(0, withLines: $0) }
        let (same, framer) = frame(["banner\nrecord 1\n\nrecord 2\n"], resume: (3, 0), finish: false, digest: digest)
        #expect(!framer.resumeMismatch && same == ["record 2"])
        let (_, other) = frame(["banner\nrecord 9\n\nrecord 10\n"], resume: (3, 0), finish: false, digest: digest)
        #expect(other.resumeMismatch, "the empty line at the mark matches; the digest does not")
    }

    @Test func stopsNoteTheDigestAndTheEndOfEachCountAskedFor() {
        var framer = LineFramer()
        framer.stop(at: [1, 3])
        framer.resume(after: .max, check: 0)
        var batch = LinkBatch()
        Array("a\nbb\nccc\ndddd\n".utf8).withUnsafeBytes { _ = framer.frame($0, into: &batch) }
        #expect(batch.isEmpty)
        #expect(framer.reached[1]?.end == 2 && framer.reached[3]?.end == 9 && framer.reached[2] == nil)
        #expect(framer.reached[3]?.digest == Array("a\nbb\nccc\n".utf8).withUnsafeBytes { LinkContentDigest.extend(0, withLines: $0) })
        #expect(framer.reached[1]?.check == LinkFingerprint.fnv1a(Array("a".utf8)))
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
        let name = StreamName(head: head, file: FileKey(device: 2049, inode: 77), discriminator: 2)
        let parsed = try #require(StreamName(parsing: name.description))
        #expect(parsed == name)
        #expect(name.description.hasPrefix("f\(head.count)-") && name.description.hasSuffix("-2"))
        #expect(name.description.split(separator: "-").count == 4)
        #expect(name.matches(head: head + Array(" and more".utf8)), "a grown file still begins the same")
        #expect(!name.matches(head: Array("2026-11-30 other".utf8)))
        #expect(name.wasRead(from: FileKey(device: 2049, inode: 77)) && !name.wasRead(from: FileKey(device: 2049, inode: 78)))
        #expect(StreamName(parsing: "spool-0123456789abcdef") == nil)
    }

    @Test func namesOfLinger02AreStillRead() throws {
        let old = try #require(StreamName(parsing: "f1024-9ae16a3b2f90404f-3"))
        #expect(old.headLength == 1024 && old.discriminator == 3 && old.fileHint == nil)
        #expect(old.description == "f1024-9ae16a3b2f90404f-3")
        for bad in ["f0-9ae16a3b2f90404f-0", "f2000-9ae16a3b2f90404f-0", "f10-9ae16a3b2f90404f--1", "f10-9ae1-0", "f10-9ae16a3b2f90404f-zz-0"] {
            #expect(StreamName(parsing: bad) == nil, "\(bad)")
        }
    }
}
