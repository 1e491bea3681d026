import CLingerZlib
import Foundation
import LingerSources

/// The spool's segment reader, on a real file in a throwaway directory, in either record format (1: zlib's
/// CRC-32 of the bytes, as linger 0.2.0 wrote; 2: CRC-32C of length and bytes, with a `format` file). A spool
/// of whole records is written, then either torn (part of one more record appended, as a crash mid-append
/// leaves it; in format 2 also zeros, as a power loss after unsynced writes leaves it) or damaged (one byte
/// changed). Invariants:
/// - torn: reopening keeps every whole record, byte for byte, and numbers the next one after them;
/// - damaged: reopening throws a ``SourceError`` or keeps a prefix of the records, each byte for byte; it
///   never returns a record that was not written.
enum SpoolTarget {
    nonisolated(unsafe) static let root: String = {
        let path = NSTemporaryDirectory() + "linger-fuzz-spool-\(getpid())"
        mkdir(path, 0o700)
        atexit { _ = try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "linger-fuzz-spool-\(getpid())") }
        return path
    }()

    static func run(_ input: UnsafeRawBufferPointer) {
        var reader = InputReader(input)
        guard let shape = reader.byte(), let where_ = reader.byte() else { return }
        let data = reader.rest()
        // Lines: the data cut at 0x0A bytes, at most 16 of them.
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).prefix(16).map(Array.init)
        let format2 = shape & 2 != 0
        var file: [UInt8] = []
        for line in lines { file += record(line, format2: format2) }
        let directory = root + "/s"
        try? FileManager.default.removeItem(atPath: directory)
        mkdir(directory, 0o700)
        if format2 { FileManager.default.createFile(atPath: directory + "/format", contents: Data("2\n".utf8)) }
        let torn = shape % 2 == 0
        var written = file
        if torn && format2 && shape & 4 != 0 {
            written += [UInt8](repeating: 0, count: 1 + Int(where_) * 7)
        } else if torn {
            let extra = record(Array(data.prefix(40)), format2: format2)
            written += extra.prefix(Int(where_) % extra.count)  // a strict prefix: never the whole record
        } else if !written.isEmpty {
            let index = (Int(where_) * 131 + Int(shape)) % written.count
            written[index] ^= (shape | 1)
        }
        FileManager.default.createFile(atPath: directory + "/00000000000000000001.seg", contents: Data(written))
        let spool: Spool
        do {
            spool = try Spool(directory: directory, policy: .none)
        } catch is SourceError {
            if torn { violated("a torn spool of \(lines.count) whole records did not open") }
            return
        } catch {
            violated("Spool threw \(type(of: error)), not a SourceError")
        }
        defer { spool.close() }
        guard let (first, read) = try? spool.records(after: 0, limit: 1 << 20) else {
            violated("an opened spool could not be read")
        }
        guard first == 1 else { violated("records start at \(first), not 1") }
        if torn {
            guard read == lines, spool.next == UInt64(lines.count) + 1 else {
                violated("a torn spool kept \(read.count) of \(lines.count) records, next \(spool.next)")
            }
        } else {
            guard read.count <= lines.count, Array(lines.prefix(read.count)) == read else {
                violated("a damaged spool returned \(read.count) records that are not a prefix of the \(lines.count) written")
            }
        }
    }

    /// One record as the spool writes it: u32 length, u32 checksum, the line (big-endian fields). Format 1's
    /// checksum is zlib's CRC-32 of the line; format 2's the CRC-32C of the length field and the line.
    static func record(_ line: [UInt8], format2: Bool) -> [UInt8] {
        let length = withUnsafeBytes(of: UInt32(line.count).bigEndian, Array.init)
        let crc = format2
            ? linger_crc32c(linger_crc32c(0, length, 4), line, line.count)
            : UInt32(line.withUnsafeBytes { crc32(0, $0.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt($0.count)) })
        return length + withUnsafeBytes(of: crc.bigEndian, Array.init) + line
    }
}
