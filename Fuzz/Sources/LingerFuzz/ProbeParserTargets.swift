import LingerCore
@testable import LingerProbe

/// What the kernel hands the probe: sock_diag dumps, `/proc/net/tcp` text and the small `/proc` files.
enum ProbeParserTargets {
    /// A netlink dump: the parser throws a ``ProbeError`` or returns records; reading INET_DIAG_INFO changes
    /// only the `info` of each record, never which records come out or whether the dump parses.
    static func inetDiag(_ input: UnsafeRawBufferPointer) {
        func parse(readsInfo: Bool) -> (records: [SocketRecord], outcome: String) {
            var records: [SocketRecord] = []
            do {
                let outcome = try InetDiagReplyParser(readsInfo: readsInfo).parse(input, into: &records)
                return (records, "\(outcome)")
            } catch let error as ProbeError {
                return (records, "error: \(error)")
            } catch {
                violated("InetDiagReplyParser threw \(type(of: error)), not a ProbeError")
            }
        }
        let plain = parse(readsInfo: false), detailed = parse(readsInfo: true)
        guard plain.outcome == detailed.outcome else { violated("INET_DIAG_INFO changed the outcome: \(plain.outcome) vs \(detailed.outcome)") }
        let stripped = detailed.records.map { record -> SocketRecord in
            var copy = record
            copy.info = nil
            return copy
        }
        guard stripped == plain.records else { violated("INET_DIAG_INFO changed the records") }
        // A dump holds a message of at least 88 bytes per record.
        guard plain.records.count <= input.count / 88 else { violated("\(plain.records.count) records from \(input.count) bytes") }
    }

    /// `/proc/net/tcp`: a state filter keeps exactly the rows of those states that the full parse returns.
    static func procNetTCP(_ input: UnsafeRawBufferPointer) {
        let parser = ProcNetTCPParser()
        var all: [SocketRecord] = []
        guard (try? parser.parse(input, states: .all, into: &all)) != nil else { return }
        let states = TCPStateSet([.established, .closeWait, .timeWait])
        var some: [SocketRecord] = []
        do {
            try parser.parse(input, states: states, into: &some)
        } catch {
            violated("the filtered parse failed where the full parse succeeded: \(error)")
        }
        let expected = all.filter { states.contains($0.state) }
        guard some == expected else { violated("the filtered parse kept \(some.count) rows; the full parse has \(expected.count) of those states") }
    }

    /// The counter, limit and port files: no crash, and answers that can be true.
    static func kernelFiles(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        var counters: [String: Int64] = [:]
        KernelFileParsers.parseCounterPairs(text, into: &counters)
        KernelFileParsers.parseSockstat(text, into: &counters)
        _ = KernelFileParsers.parseOpenFileLimit(text)
        if let range = KernelFileParsers.parsePortRange(text), range.lowerBound > range.upperBound {
            violated("port range \(range) is upside down")
        }
        // The reserved ports of a range are at most the range: capacity subtracts them from it.
        let range = 32768...60999
        let reserved = KernelFileParsers.reservedPortCount(text, within: range)
        guard reserved >= 0, reserved <= range.count else {
            violated("\(reserved) reserved ports counted in a range of \(range.count) from '\(text.prefix(200))'")
        }
    }
}
