import LingerCore

/// A sock_diag dump request for TCP sockets of one address family (`struct inet_diag_req_v2` behind an
/// `nlmsghdr`, see `man 7 sock_diag`), built as bytes so it can be checked on any OS.
struct InetDiagRequest {
    /// `AF_INET` (2) or `AF_INET6` (10).
    var family: UInt8
    /// The states to dump; the kernel filters by this mask before copying anything to us.
    var states: TCPStateSet
    /// `idiag_ext` bits (`1 << (INET_DIAG_x - 1)`); 0 asks for the bare `inet_diag_msg`.
    var extensions: UInt8 = 0
    var sequence: UInt32 = 1

    static let familyIPv4: UInt8 = 2
    static let familyIPv6: UInt8 = 10
    static let protocolTCP: UInt8 = 6
    /// `NLM_F_REQUEST | NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
    static let dumpFlags: UInt16 = 0x1 | 0x100 | 0x200
    static let sockDiagByFamily: UInt16 = 20
    static let length = 16 + 56

    /// The request as it goes on the wire, in host byte order except where the kernel wants network order
    /// (the ports and addresses in `inet_diag_sockid`, all zero here).
    var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.length)
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put32(UInt32(Self.length))
        put16(Self.sockDiagByFamily)
        put16(Self.dumpFlags)
        put32(sequence)
        put32(0)
        out.append(family)
        out.append(Self.protocolTCP)
        out.append(extensions)
        out.append(0)
        put32(states.rawValue)
        out.append(contentsOf: repeatElement(0, count: 48))  // inet_diag_sockid: match everything
        return out
    }
}
