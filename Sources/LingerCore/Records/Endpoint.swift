/// One end of a TCP connection: an address and a port.
public struct Endpoint: Sendable, Hashable {
    /// The IP address, as the kernel reported it (a v4-mapped address stays mapped).
    public var address: IPAddress
    /// The port in host order; 0 for the unconnected remote end of a listener.
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Writes `address:port` (IPv6 in brackets, as `ss` prints it) into a byte buffer.
    public func appendText(to out: inout [UInt8]) {
        if case .v6 = address {
            out.append(UInt8(ascii: "["))
            address.appendText(to: &out)
            out.append(UInt8(ascii: "]"))
        } else {
            address.appendText(to: &out)
        }
        out.append(UInt8(ascii: ":"))
        if port == 0 { out.append(UInt8(ascii: "*")) } else { appendDecimal(UInt64(port), to: &out) }
    }
}

extension Endpoint: CustomStringConvertible {
    public var description: String {
        var out: [UInt8] = []
        appendText(to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// An address range in CIDR notation (`10.0.0.0/8`, `fe80::/10`, or a bare address meaning one host).
///
/// IPv4 ranges also match v4-mapped IPv6 addresses, because a dual-stack service sees its IPv4 clients
/// that way and a user filtering on `10.0.0.0/8` means those clients too.
public struct AddressRange: Sendable, Hashable {
    public let network: IPAddress
    public let prefixLength: Int

    /// Parses `ADDRESS[/PREFIX]`; returns `nil` when the address or the prefix length is malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        let maxLength = if case .v4 = address { 32 } else { 128 }
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maxLength).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = maxLength
        }
        network = address
    }

    /// Whether `address` lies inside the range.
    public func contains(_ address: IPAddress) -> Bool {
        switch network {
        case .v4(let net):
            guard let v4 = address.unmappedIPv4 else { return false }
            if prefixLength == 0 { return true }
            let mask: UInt32 = prefixLength == 32 ? .max : ~(UInt32.max >> UInt32(prefixLength))
            return v4 & mask == net & mask
        case .v6:
            if case .v4 = address, !network.isV4Mapped { return false }
            let a = address.bytes16, n = network.bytes16
            var remaining = prefixLength
            for i in 0..<16 where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if a[i] & mask != n[i] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }
}
