@testable import LingerLink

/// The file sink's state log (`PATH.linger-state`): what it reads decides which lines are "already stored".
/// Invariants:
/// - any bytes parse without a crash, and the valid prefix parses to the same state on its own;
/// - a log cut in the middle of its last record (a crash mid-append) keeps every mark before it, so no
///   acknowledged line is written twice or skipped;
/// - compaction (the snapshot a restart writes) reads back as the same state.
enum StateLogTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        let log = FileSinkStateLog(parsing: bytes)
        guard log.validPrefix <= bytes.count else { violated("valid prefix \(log.validPrefix) beyond \(bytes.count) bytes") }
        let again = FileSinkStateLog(parsing: Array(bytes[..<log.validPrefix]))
        guard same(log, again) else { violated("the valid prefix alone parses to another state") }

        // A crash mid-append: the log up to its last whole record, then part of that record (no newline). The
        // state must be the one before that record: nothing half-written counts, nothing before it is lost.
        if log.records > 0 {
            let last = log.validPrefix - 1  // the newline ending the last valid record
            let start = bytes[..<last].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            let before = FileSinkStateLog(parsing: Array(bytes[..<start]))
            for cut in [start + (last - start) / 2, last] where cut > start {
                let recovered = FileSinkStateLog(parsing: Array(bytes[..<cut]))
                guard same(recovered, before), recovered.validPrefix == start else {
                    violated("a log torn at byte \(cut) of its last record recovers another state than the one before it")
                }
            }
        }

        if let identity = log.identity {
            let compacted = FileSinkStateLog(parsing: Array(log.snapshot(identity: identity).utf8))
            guard compacted.identity == identity, compacted.length == log.length, compacted.marks == log.marks,
                  compacted.head?.length == log.head?.length, compacted.head?.hash == log.head?.hash
            else { violated("the compacted log reads back as another state: \(compacted.marks) vs \(log.marks)") }
        }
    }

    static func same(_ a: FileSinkStateLog, _ b: FileSinkStateLog) -> Bool {
        a.identity == b.identity && a.length == b.length && a.marks == b.marks && a.head?.length == b.head?.length
            && a.head?.hash == b.head?.hash && a.records == b.records
    }
}
