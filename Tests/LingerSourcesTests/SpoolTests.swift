import CLingerZlib
import Foundation
import LingerSources
import Testing

/// A directory under /tmp for one test, removed when the suite instance (one per test) lets go of it.
final class TemporaryDirectory {
    let path: String

    init(prefix: String) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct SpoolTests {
    let scratch = TemporaryDirectory(prefix: "linger-spool")
    var directory: String { scratch.path }

    private func lines(_ range: ClosedRange<Int>) -> [[UInt8]] { range.map { Array("line \($0)".utf8) } }

    @Test func recordsSurviveAReopenAndLeaveOnceAcknowledged() throws {
        let spool = try Spool(directory: directory, segmentBytes: 200)
        #expect(try spool.append(lines(1...10)) == 1)
        #expect(try spool.append(lines(11...20)) == 11)
        let name = spool.streamName
        spool.close()
        let reopened = try Spool(directory: directory, segmentBytes: 200)
        #expect(reopened.streamName == name && reopened.nextSequence == 21)
        let (first, pending) = try reopened.records(after: 5)
        #expect(first == 6 && pending == lines(6...20))
        reopened.release(through: 20)
        #expect(reopened.bytes == 0)
        reopened.close()
        let emptied = try Spool(directory: directory, segmentBytes: 200)
        #expect(try emptied.append(lines(21...21)) == 21, "numbering goes on after the acknowledged records, even from an empty spool")
        #expect(try emptied.records(after: 20).lines == lines(21...21))
    }

    /// Found by the spool fuzz target (Fuzz/Regressions/spool-empty-last-record: a spool holding one empty
    /// line): a read whose block was a single empty record, 8 bytes of header, returned nothing, so an empty
    /// last line from stdin was never sent while `next` counted it.
    /// One sender per spool: a second one would cut the first's append in progress as a torn tail.
    @Test func aSecondSenderOnTheSameSpoolIsRefusedUntilTheFirstCloses() throws {
        let spool = try Spool(directory: directory, segmentBytes: 200)
        #expect(try spool.append(lines(1...3)) == 1)
        #expect {
            _ = try Spool(directory: directory, segmentBytes: 200)
        } throws: { error in
            "\(error)" == "the spool \(directory) is in use by another sender (pid \(getpid())); give each sender its own --spool"
        }
        #expect(try spool.append(lines(4...5)) == 4, "the first goes on")
        spool.close()
        let next = try Spool(directory: directory, segmentBytes: 200)
        #expect(next.nextSequence == 6)
        next.close()
    }

    @Test func anEmptyLastLineIsRead() throws {
        let spool = try Spool(directory: directory)
        #expect(try spool.append([Array("a".utf8), []]) == 1)
        #expect(try spool.records(after: 1).lines == [[]])
        spool.close()
        let reopened = try Spool(directory: directory)
        defer { reopened.close() }
        #expect(reopened.nextSequence == 3)
        #expect(try reopened.records(after: 0).lines == [Array("a".utf8), []])
    }

    @Test func aTornTailIsCutAndDamageElsewhereIsNamed() throws {
        let spool = try Spool(directory: directory)
        try spool.append(lines(1...3))
        spool.close()
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".seg") })
        let handle = try #require(FileHandle(forWritingAtPath: directory + "/" + segment))
        handle.seekToEndOfFile()
        handle.write(Data([0, 0, 0, 9, 1, 2]))  // a record header cut short by a crash
        try handle.close()
        let reopened = try Spool(directory: directory)
        #expect(reopened.nextSequence == 4)
        #expect(try reopened.records(after: 0).lines == lines(1...3))
        reopened.close()
        // A flipped byte inside a record that is not the last of the last segment is damage, not a tear.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + segment))
        bytes[9] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: directory + "/" + segment))
        let error = try #require(throws: SourceError.self, "damage before the end is not a torn tail") { try Spool(directory: directory) }
        #expect(error.message.contains("damaged") && error.message.contains(segment))
    }

    @Test func crc32cMatchesTheStandardAndTheTableEverywhere() {
        let check = Array("123456789".utf8)
        #expect(linger_crc32c(0, check, check.count) == 0xE306_9283, "the CRC-32C check value (RFC 3720)")
        #expect(linger_crc32c_portable(0, check, check.count) == 0xE306_9283)
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 63, 64, 100, 250] where start + length <= bytes.count {
                let fast = bytes.withUnsafeBytes { linger_crc32c(0, $0.baseAddress! + start, length) }
                let table = bytes.withUnsafeBytes { linger_crc32c_portable(0, $0.baseAddress! + start, length) }
                #expect(fast == table, "offset \(start), \(length) bytes")
            }
        }
    }

    @Test func aNewSpoolIsFormat2AndAnOlderOneIsStillRead() throws {
        let spool = try Spool(directory: directory)
        try spool.append(lines(1...3))
        spool.close()
        #expect(try String(contentsOfFile: directory + "/format", encoding: .utf8) == "2\n")
        // A spool as linger 0.2.0 left it: `stream`, no `format`, zlib's CRC-32 of the bytes alone.
        let older = directory + "/older"
        try FileManager.default.createDirectory(atPath: older, withIntermediateDirectories: true)
        try "spool-00000000000000ab\n".write(toFile: older + "/stream", atomically: true, encoding: .utf8)
        var segment: [UInt8] = []
        for line in lines(1...4) {
            let crc = UInt32(line.withUnsafeBytes { crc32(0, $0.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt($0.count)) })
            segment += withUnsafeBytes(of: UInt32(line.count).bigEndian, Array.init) + withUnsafeBytes(of: crc.bigEndian, Array.init) + line
        }
        try Data(segment).write(to: URL(fileURLWithPath: older + "/00000000000000000001.seg"))
        let reopened = try Spool(directory: older)
        #expect(reopened.nextSequence == 5)
        #expect(try reopened.append(lines(5...5)) == 5, "appends keep the older format while it holds segments")
        #expect(try reopened.records(after: 0).lines == lines(1...5))
        reopened.close()
        #expect(try Spool(directory: older).records(after: 2).lines == lines(3...5), "and read back after a reopen")
        #expect(!FileManager.default.fileExists(atPath: older + "/format"))
    }

    /// What a power loss can leave after writes that were not fsynced (`--spool-sync none`): the file's size
    /// grew but its last blocks are zeros. In format 2 zeros are not a valid record, so the tail is cut,
    /// not read as empty lines and not refused as damage.
    @Test func aZeroFilledTailIsCutNotReadAsEmptyLines() throws {
        let spool = try Spool(directory: directory, policy: .none)
        try spool.append(lines(1...10))
        spool.close()
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".seg") })
        let handle = try #require(FileHandle(forWritingAtPath: directory + "/" + segment))
        handle.seekToEndOfFile()
        handle.write(Data(count: 4096))
        try handle.close()
        let reopened = try Spool(directory: directory)
        defer { reopened.close() }
        #expect(reopened.nextSequence == 11)
        #expect(try reopened.records(after: 0).lines == lines(1...10))
    }

    /// Reads that start anywhere: right after an append (from where appends began), in the middle of one, and
    /// after a reopen (walking the headers from the segment's start).
    @Test func recordsAfterAnySequenceAreTheRightOnes() throws {
        let spool = try Spool(directory: directory, segmentBytes: 4096)
        for batch in 0..<40 { try spool.append(lines((batch * 25 + 1)...((batch + 1) * 25))) }
        for after in [0, 1, 24, 25, 26, 333, 500, 998, 999] {
            let (first, read) = try spool.records(after: UInt64(after), limit: 300)
            #expect(first == UInt64(after + 1))
            #expect(read == Array(lines((after + 1)...1000).prefix(read.count)) && !read.isEmpty, "after \(after)")
        }
        spool.close()
        let reopened = try Spool(directory: directory, segmentBytes: 4096)
        defer { reopened.close() }
        for after in [0, 7, 250, 777, 999] {
            let read = try reopened.records(after: UInt64(after), limit: 300).lines
            #expect(read == Array(lines((after + 1)...1000).prefix(read.count)) && !read.isEmpty, "after \(after), reopened")
        }
    }

    @Test func aFullSpoolRefusesWithAReason() throws {
        let spool = try Spool(directory: directory, maximumBytes: 1 << 20)
        let big = [[UInt8]](repeating: [UInt8](repeating: 0x61, count: 1000), count: 1100)
        let error = try #require(throws: SourceError.self) { try spool.append(big) }
        #expect(error.message.contains("is full"))
        #expect(spool.bytes == 0, "nothing of a refused append is kept")
    }
}

struct CompressedInputTests {
    @Test func aGzippedRotatedFileReadsAndIsNamedLikeTheOriginal() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-gz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let text = (1...5000).map { "line \($0)" }.joined(separator: "\n") + "\n"
        try text.write(toFile: directory + "/app.log.1", atomically: true, encoding: .utf8)
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-k", directory + "/app.log.1"]
        try gzip.run()
        gzip.waitUntilExit()
        let plain = try #require(try InputFile.open(directory + "/app.log.1"))
        let compressed = try #require(try InputFile.open(directory + "/app.log.1.gz"))
        #expect(compressed.isCompressed)
        #expect(try compressed.head(StreamName.headLimit) == plain.head(StreamName.headLimit), "named by the same head")
        var all: [UInt8] = []
        while true {
            let chunk = try compressed.read(upTo: 4096)
            if chunk.isEmpty { break }
            all += chunk
        }
        #expect(String(decoding: all, as: UTF8.self) == text)
    }
}
