@preconcurrency import Glibc

/// Hand-made TCP segments for the time-wait-syn scenario: a raw IPPROTO_RAW socket to send crafted SYNs,
/// and a raw IPPROTO_TCP socket that sees every TCP segment the namespace receives (on loopback, both
/// directions). Needs CAP_NET_RAW (the lab runs as root).
struct TCPSegment {
    var sourcePort: UInt16
    var destinationPort: UInt16
    var sequence: UInt32
    var acknowledgment: UInt32
    var flags: UInt8
    /// TSval/TSecr when the segment carries the timestamps option.
    var timestamp: (value: UInt32, echo: UInt32)?

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10

    var flagNames: String {
        var names: [String] = []
        if flags & Self.syn != 0 { names.append("SYN") }
        if flags & Self.ack != 0 { names.append("ACK") }
        if flags & Self.fin != 0 { names.append("FIN") }
        if flags & Self.rst != 0 { names.append("RST") }
        return names.joined(separator: "+")
    }

    /// Parses an IPv4 packet holding a TCP segment.
    init?(packet: ArraySlice<UInt8>) {
        let p = Array(packet)
        guard p.count >= 40, p[0] >> 4 == 4, p[9] == 6 else { return nil }
        let ipLength = Int(p[0] & 0x0F) * 4
        guard p.count >= ipLength + 20 else { return nil }
        let t = Array(p[ipLength...])
        func u16(_ i: Int) -> UInt16 { UInt16(t[i]) << 8 | UInt16(t[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        sourcePort = u16(0)
        destinationPort = u16(2)
        sequence = u32(4)
        acknowledgment = u32(8)
        flags = t[13]
        let dataOffset = Int(t[12] >> 4) * 4
        var i = 20
        timestamp = nil
        while i < min(dataOffset, t.count) {
            let kind = t[i]
            if kind == 0 { break }
            if kind == 1 { i += 1; continue }
            guard i + 1 < t.count else { break }
            let length = Int(t[i + 1])
            if kind == 8 && length == 10 && i + 10 <= t.count { timestamp = (u32(i + 2), u32(i + 6)) }
            i += max(length, 2)
        }
    }

    init(sourcePort: UInt16, destinationPort: UInt16, sequence: UInt32, flags: UInt8, timestamp: (UInt32, UInt32)?) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        acknowledgment = 0
        self.flags = flags
        self.timestamp = timestamp
    }

    /// The IPv4 packet (127.0.0.1 → 127.0.0.1) carrying this segment, with a correct TCP checksum.
    func packet() -> [UInt8] {
        var tcp: [UInt8] = []
        func put16(_ v: UInt16) { tcp += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func put32(_ v: UInt32) { put16(UInt16(v >> 16)); put16(UInt16(v & 0xFFFF)) }
        let optionBytes = timestamp == nil ? 0 : 12
        put16(sourcePort); put16(destinationPort); put32(sequence); put32(acknowledgment)
        tcp += [UInt8((20 + optionBytes) / 4) << 4, flags]
        put16(65535)  // window
        put16(0)  // checksum, below
        put16(0)  // urgent pointer
        if let timestamp { tcp += [1, 1, 8, 10]; put32(timestamp.0); put32(timestamp.1) }
        let loopback: [UInt8] = [127, 0, 0, 1]
        var pseudo = loopback + loopback + [0, 6, UInt8(tcp.count >> 8), UInt8(tcp.count & 0xFF)] + tcp
        if pseudo.count % 2 == 1 { pseudo.append(0) }
        var sum: UInt32 = 0
        for i in stride(from: 0, to: pseudo.count, by: 2) { sum += UInt32(pseudo[i]) << 8 | UInt32(pseudo[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        tcp[16] = UInt8(checksum >> 8)
        tcp[17] = UInt8(checksum & 0xFF)
        let total = 20 + tcp.count
        // IPv4 header; the kernel fills in the header checksum (and the id when it is 0) for IP_HDRINCL.
        let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, 6, 0, 0] + loopback + loopback
        return ip + tcp
    }
}

enum RawTCP {
    static func sender() -> Int32 { socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW)) }
    static func sniffer() -> Int32 { socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_TCP)) }

    static func send(_ fd: Int32, _ segment: TCPSegment) -> Bool {
        let packet = segment.packet()
        var destination = POSIX.address("127.0.0.1", 0)
        let sent = withUnsafePointer(to: &destination) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                packet.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, address, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        return sent == packet.count
    }

    /// Discards what the sniffer has queued (the old connection's last segments), so the next read sees
    /// only answers to what we send from now on.
    static func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    /// The next segment matching `filter` within `timeout` seconds.
    static func next(_ fd: Int32, timeout: Double, where filter: (TCPSegment) -> Bool) -> TCPSegment? {
        let deadline = monotonicSeconds() + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while monotonicSeconds() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0, let segment = TCPSegment(packet: buffer[0..<n]), filter(segment) { return segment }
        }
        return nil
    }
}
