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

    @Test func aFullSpoolRefusesWithAReason() throws {
        let spool = try Spool(directory: directory, maximumBytes: 1 << 20)
        let big = [[UInt8]](repeating: [UInt8](repeating: 0x61, count: 1000), count: 1100)
        let error = try #require(throws: SourceError.self) { try spool.append(big) }
        #expect(error.message.contains("is full"))
        #expect(spool.bytes == 0, "nothing of a refused append is kept")
    }
}

struct RotatedFilesTests {
    @Test func siblingsComeOldestFirst() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linger-rot-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["app.log", "app.log.1", "app.log.2.gz", "app.log.10", "app.log-20261129", "app.log-20261128.gz", "app.logger", "other.log.1"] {
            FileManager.default.createFile(atPath: directory + "/" + name, contents: Data())
        }
        let siblings = RotatedFiles.siblings(of: directory + "/app.log").map { $0.split(separator: "/").last.map(String.init) ?? $0 }
        #expect(siblings == ["app.log-20261128.gz", "app.log-20261129", "app.log.10", "app.log.2.gz", "app.log.1"])
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
