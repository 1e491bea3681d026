#if os(Linux)
import LingerCore

/// Dumps TCP sockets over NETLINK_SOCK_DIAG, as `ss` does (`man 7 sock_diag`).
enum SockDiagDump {
    /// Receive buffer size. The kernel fills at most about 32 KiB per read of a dump, so a bigger buffer
    /// only wastes memory.
    static let bufferSize = 64 * 1024

    /// Dumps IPv4 then IPv6 sockets in `states`, appending to `records`; with `info`, each with its `tcp_info`
    /// and memory (the kernel then copies about 300 more bytes per socket).
    static func dump(states: TCPStateSet, info: Bool = false, into records: inout [SocketRecord]) throws {
        let fd: Int32
        switch system_netlink_socket() {
        case .success(let value): fd = value
        case .failure(let error):
            throw ProbeError(.netlinkUnavailable, "cannot open a NETLINK_SOCK_DIAG socket: \(error.text)", errno: error.code)
        }
        defer { system_close(fd) }
        if case .failure(let error) = system_netlink_bind(fd) {
            throw ProbeError(.netlinkUnavailable, "cannot bind the netlink socket: \(error.text)", errno: error.code)
        }
        let parser = InetDiagReplyParser(readsInfo: info)
        // 1 << (INET_DIAG_INFO - 1) | 1 << (INET_DIAG_SKMEMINFO - 1)
        let extensions: UInt8 = info ? 0x02 | 0x40 : 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
        defer { buffer.deallocate() }
        for (index, family) in [InetDiagRequest.familyIPv4, InetDiagRequest.familyIPv6].enumerated() {
            let request = InetDiagRequest(family: family, states: states, extensions: extensions, sequence: UInt32(index + 1))
            if case .failure(let error) = system_netlink_send(fd, request.bytes) {
                throw ProbeError(.netlinkUnavailable, "cannot send the sock_diag request: \(error.text)", errno: error.code)
            }
            receiving: while true {
                let count: Int
                switch system_recv(fd, buffer.baseAddress!, buffer.count) {
                case .success(let n): count = n
                case .failure(let error):
                    throw ProbeError(.netlinkUnavailable, "cannot read the sock_diag reply: \(error.text)", errno: error.code)
                }
                if count == 0 { break receiving }
                if try parser.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), into: &records) == .done {
                    break receiving
                }
            }
        }
    }
}
#endif
