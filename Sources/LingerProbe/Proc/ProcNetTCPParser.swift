package import LingerCore

/// Parses `/proc/net/tcp` and `/proc/net/tcp6` text into ``SocketRecord``s (the path `netstat` takes).
///
/// Columns (`tcp4_seq_show` in `net/ipv4/tcp_ipv4.c`): `sl local rem st tx:rx tr:when retrnsmt uid timeout
/// inode ...`. Addresses are the kernel's `__be32` words printed as host-order hex, so the parser assumes
/// the text was produced on a little-endian machine like the one reading it (every Linux box we target).
package struct ProcNetTCPParser {
    /// Ticks per second of `tm->when` (USER_HZ, 100 on every Linux architecture we run on).
    static let userHz: Int64 = 100

    package init() {}

    /// Parses the whole file, skipping the header line; rows whose state is not in `states` are dropped.
    /// - Throws: ``ProbeError`` `.malformedReply` naming the line that does not parse.
    package func parse(_ text: UnsafeRawBufferPointer, states: TCPStateSet = .all, into records: inout [SocketRecord]) throws {
        var lineStart = 0
        var lineNumber = 0
        let count = text.count
        while lineStart < count {
            var lineEnd = lineStart
            while lineEnd < count && text[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            lineNumber += 1
            if lineNumber == 1 || lineEnd == lineStart { continue }
            var cursor = LineCursor(bytes: text, position: lineStart, end: lineEnd)
            guard let record = try cursor.record(states: states) else {
                if cursor.failed {
                    throw ProbeError(.malformedReply, "/proc/net/tcp line \(lineNumber) does not parse: \(String(decoding: UnsafeRawBufferPointer(rebasing: text[lineStart..<lineEnd]), as: UTF8.self))")
                }
                continue
            }
            records.append(record)
        }
    }

    /// Convenience for tests and fixtures.
    package func parse(_ text: String, states: TCPStateSet = .all) throws -> [SocketRecord] {
        var records: [SocketRecord] = []
        var copy = text
        try copy.withUTF8 { try parse(UnsafeRawBufferPointer($0), states: states, into: &records) }
        return records
    }
}

/// Walks one line field by field without allocating.
private struct LineCursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    let end: Int
    var failed = false

    mutating func skipSpaces() {
        while position < end && bytes[position] == UInt8(ascii: " ") { position += 1 }
    }

    /// Reads hex digits up to a delimiter (or space); marks failure when there are none.
    mutating func hex(maxDigits: Int = 16) -> UInt64 {
        var value: UInt64 = 0
        var digits = 0
        while position < end {
            let c = bytes[position]
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default:
                if digits == 0 { failed = true }
                return value
            }
            value = value << 4 | UInt64(v)
            digits += 1
            position += 1
            if digits > maxDigits { failed = true; return value }
        }
        if digits == 0 { failed = true }
        return value
    }

    mutating func decimal() -> UInt64 {
        var value: UInt64 = 0
        var digits = 0
        while position < end, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
            value = value &* 10 &+ UInt64(bytes[position] - UInt8(ascii: "0"))
            position += 1
            digits += 1
        }
        if digits == 0 { failed = true }
        return value
    }

    mutating func expect(_ char: Character) {
        if position < end && bytes[position] == char.asciiValue! { position += 1 } else { failed = true }
    }

    mutating func skipField() {
        skipSpaces()
        while position < end && bytes[position] != UInt8(ascii: " ") { position += 1 }
    }

    mutating func endpoint() -> Endpoint {
        skipSpaces()
        let start = position
        while position < end && bytes[position] != UInt8(ascii: ":") { position += 1 }
        let digits = position - start
        position = start
        let address: IPAddress
        if digits == 8 {
            address = .v4(UInt32(bigEndian: UInt32(truncatingIfNeeded: hex(maxDigits: 8))))
        } else if digits == 32 {
            var words: [UInt32] = [0, 0, 0, 0]
            for i in 0..<4 {
                let wordEnd = position + 8
                var value: UInt32 = 0
                while position < wordEnd {
                    let c = bytes[position]
                    let v: UInt8 = c <= UInt8(ascii: "9") ? c &- UInt8(ascii: "0") : (c | 0x20) &- UInt8(ascii: "a") &+ 10
                    if v > 15 { failed = true }
                    value = value << 4 | UInt32(v)
                    position += 1
                }
                words[i] = UInt32(bigEndian: value)
            }
            address = .v6(
                high: UInt64(words[0]) << 32 | UInt64(words[1]),
                low: UInt64(words[2]) << 32 | UInt64(words[3])
            )
        } else {
            failed = true
            return Endpoint(address: .v4(0), port: 0)
        }
        expect(":")
        let port = UInt16(truncatingIfNeeded: hex(maxDigits: 4))
        return Endpoint(address: address, port: port)
    }

    /// `tm->when` in clock ticks, signed: its low 32 bits. The kernel prints a `long` as unsigned hex, so a
    /// 32-bit kernel, or an old one that did not clamp an expired timer at 0, prints a small negative delta as
    /// its two's complement in 8 or 16 digits; both read back as the same negative number. Every real value
    /// fits 32 bits (2^31 ticks is 248 days), and so `ticks * 1000` cannot overflow on a line no kernel wrote
    /// (the fuzzer's `AAAAAA0000000000`).
    static func ticks(_ when: UInt64) -> Int64 { Int64(Int32(truncatingIfNeeded: when)) }

    mutating func record(states: TCPStateSet) throws -> SocketRecord? {
        skipField()  // "sl:"
        let local = endpoint()
        let remote = endpoint()
        skipSpaces()
        let stateNumber = UInt8(truncatingIfNeeded: hex(maxDigits: 2))
        guard !failed else { return nil }
        guard let state = TCPState(rawValue: stateNumber) else { return nil }
        guard states.contains(state) else { return nil }
        skipSpaces()
        let tx = hex(maxDigits: 8)
        expect(":")
        let rx = hex(maxDigits: 8)
        skipSpaces()
        let timerKind = hex(maxDigits: 2)
        expect(":")
        let when = hex(maxDigits: 16)
        skipSpaces()
        let retransmits = hex(maxDigits: 8)
        skipSpaces()
        let uid = decimal()
        skipSpaces()
        _ = decimal()  // "timeout": really icsk_probes_out
        skipSpaces()
        let inode = decimal()
        guard !failed else { return nil }
        let ticks = Self.ticks(when)
        let timer = SocketTimer.Kind(rawValue: UInt8(truncatingIfNeeded: timerKind)).map {
            SocketTimer(kind: $0, expiresInMilliseconds: ticks * 1000 / ProcNetTCPParser.userHz,
                        retransmits: UInt32(truncatingIfNeeded: retransmits))
        }
        return SocketRecord(
            state: state, local: local, remote: remote,
            recvQ: UInt32(truncatingIfNeeded: rx), sendQ: state == .listen ? 0 : UInt32(truncatingIfNeeded: tx),
            timer: timer, uid: UInt32(truncatingIfNeeded: uid), inode: inode
        )
    }
}
