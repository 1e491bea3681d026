/// An IPv4 or IPv6 address held as plain integers, so a table of 100,000 sockets carries no heap storage
/// per address.
///
/// A v4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack listener sees IPv4 peers) stays IPv6 —
/// it is what the kernel reports and what `ss` prints — but ``unmappedIPv4`` exposes the IPv4 address inside
/// so CIDR filters and per-destination grouping treat both forms as the same host.
public enum IPAddress: Sendable, Hashable {
    /// An IPv4 address; the value is in host order, so `127.0.0.1` is `0x7F00_0001`.
    case v4(UInt32)
    /// An IPv6 address as two big-endian halves: `high` holds the first eight bytes.
    case v6(high: UInt64, low: UInt64)

    /// Whether this is an IPv4 address mapped into IPv6 (`::ffff:0:0/96`).
    public var isV4Mapped: Bool {
        if case .v6(let high, let low) = self { return high == 0 && (low >> 32) == 0xFFFF }
        return false
    }

    /// The IPv4 address this one stands for: itself when IPv4, the embedded address when v4-mapped.
    public var unmappedIPv4: UInt32? {
        switch self {
        case .v4(let value): return value
        case .v6(_, let low) where isV4Mapped: return UInt32(truncatingIfNeeded: low)
        case .v6: return nil
        }
    }

    /// Whether the address is a wildcard (`0.0.0.0` or `::`), as on a listener bound to all interfaces.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let value): value == 0
        case .v6(let high, let low): high == 0 && low == 0
        }
    }

    /// Whether the address is loopback (`127.0.0.0/8`, `::1`, or v4-mapped loopback).
    public var isLoopback: Bool {
        if let v4 = unmappedIPv4 { return v4 >> 24 == 127 }
        return self == .v6(high: 0, low: 1)
    }

    /// The sixteen bytes of the address in network order (IPv4 is mapped, so both families compare alike).
    var bytes16: [UInt8] {
        switch self {
        case .v4(let value):
            return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }
}

// MARK: - Text

extension IPAddress: CustomStringConvertible {
    /// Dotted quad for IPv4; RFC 5952 text for IPv6 (lower case, longest zero run compressed, v4-mapped
    /// addresses with their IPv4 tail), matching `inet_ntop` and therefore `ss`.
    public var description: String {
        var out: [UInt8] = []
        out.reserveCapacity(40)
        appendText(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes the textual form into a byte buffer; the listing renderer calls this for every socket, so it
    /// allocates nothing.
    public func appendText(to out: inout [UInt8]) {
        switch self {
        case .v4(let value):
            Self.appendDottedQuad(value, to: &out)
        case .v6(let high, let low):
            if isV4Mapped {
                out.append(contentsOf: "::ffff:".utf8)
                Self.appendDottedQuad(UInt32(truncatingIfNeeded: low), to: &out)
                return
            }
            var groups: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (
                UInt16(truncatingIfNeeded: high >> 48), UInt16(truncatingIfNeeded: high >> 32),
                UInt16(truncatingIfNeeded: high >> 16), UInt16(truncatingIfNeeded: high),
                UInt16(truncatingIfNeeded: low >> 48), UInt16(truncatingIfNeeded: low >> 32),
                UInt16(truncatingIfNeeded: low >> 16), UInt16(truncatingIfNeeded: low)
            )
            withUnsafeBytes(of: &groups) { raw in
                let g = raw.bindMemory(to: UInt16.self)
                // Longest run of zero groups, at least two long (RFC 5952 §4.2.2); first one wins ties.
                var bestStart = -1, bestLen = 0, runStart = -1
                for i in 0...8 {
                    if i < 8 && g[i] == 0 {
                        if runStart < 0 { runStart = i }
                    } else if runStart >= 0 {
                        if i - runStart > bestLen { bestStart = runStart; bestLen = i - runStart }
                        runStart = -1
                    }
                }
                if bestLen < 2 { bestStart = -1 }
                var i = 0
                while i < 8 {
                    if i == bestStart {
                        out.append(UInt8(ascii: ":"))
                        if i == 0 { out.append(UInt8(ascii: ":")) }
                        i += bestLen
                        continue
                    }
                    appendHex(g[i], to: &out)
                    if i < 7 { out.append(UInt8(ascii: ":")) }
                    i += 1
                }
            }
        }
    }

    /// Parses dotted-quad IPv4 or IPv6 text (with `::` compression and an optional IPv4 tail).
    public init?(_ text: some StringProtocol) {
        if let v4 = Self.parseIPv4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseIPv6(Substring(text)) {
            self = v6
        } else {
            return nil
        }
    }

    static func appendDottedQuad(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) {
            appendDecimal(UInt64((value >> UInt32(shift)) & 0xFF), to: &out)
            if shift > 0 { out.append(UInt8(ascii: ".")) }
        }
    }

    private static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseIPv6(_ text: Substring) -> IPAddress? {
        guard text.contains(":") else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        func groups(_ s: Substring, allowV4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var result: [UInt16] = []
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for (index, part) in parts.enumerated() {
                if allowV4Tail, index == parts.count - 1, part.contains("."), let v4 = parseIPv4(part) {
                    result.append(UInt16(v4 >> 16)); result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard !part.isEmpty, part.count <= 4, let g = UInt16(part, radix: 16) else { return nil }
                    result.append(g)
                }
            }
            return result
        }
        if let gap = text.firstRange(of: "::") {
            let before = text[..<gap.lowerBound], after = text[gap.upperBound...]
            guard !after.contains("::"), let h = groups(before, allowV4Tail: false),
                let t = groups(after, allowV4Tail: true), h.count + t.count <= 7
            else { return nil }
            head = h; tail = t
        } else {
            guard let all = groups(text, allowV4Tail: true), all.count == 8 else { return nil }
            head = all
        }
        let full = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(full[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(full[i]) }
        return .v6(high: high, low: low)
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

private func appendHex(_ value: UInt16, to out: inout [UInt8]) {
    var started = false
    for shift in stride(from: 12, through: 0, by: -4) {
        let nibble = Int((value >> UInt16(shift)) & 0xF)
        if nibble != 0 || started || shift == 0 {
            out.append(hexDigits[nibble])
            started = true
        }
    }
}

/// Appends an unsigned decimal without going through `String`, for the hot listing path.
@inlinable
public func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
    if value < 10 {
        out.append(UInt8(truncatingIfNeeded: value) &+ 48)
        return
    }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    var v = value
    withUnsafeMutableBytes(of: &digits) { buf in
        while v > 0 {
            buf[count] = UInt8(truncatingIfNeeded: v % 10) &+ 48
            v /= 10
            count += 1
        }
        for i in stride(from: count - 1, through: 0, by: -1) { out.append(buf[i]) }
    }
}
