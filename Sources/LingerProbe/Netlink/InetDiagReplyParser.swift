package import LingerCore

/// Turns sock_diag reply bytes into ``SocketRecord``s. Pure: it runs on any OS, against recorded dumps.
///
/// Layout (`include/uapi/linux/inet_diag.h`): each message is a 16-byte `nlmsghdr` followed by a 72-byte
/// `inet_diag_msg` and optional attributes; messages are padded to 4 bytes. Ports and addresses are in
/// network order, every other field in host order.
package struct InetDiagReplyParser {
    /// What one buffer of reply bytes held besides records.
    package enum Outcome: Equatable {
        /// More messages will follow in the next read.
        case more
        /// `NLMSG_DONE`: the dump is complete.
        case done
    }

    static let headerLength = 16
    static let messageLength = 72
    static let nlmsgError: UInt16 = 2
    static let nlmsgDone: UInt16 = 3

    /// Whether to decode INET_DIAG_INFO and INET_DIAG_SKMEMINFO into ``SocketRecord/info``.
    package var readsInfo = false

    package init(readsInfo: Bool = false) { self.readsInfo = readsInfo }

    /// Parses every message in `bytes`, appending records to `records`.
    /// - Throws: ``ProbeError`` with `.netlinkUnavailable` when the kernel answered with an error message,
    ///   `.malformedReply` when a length field does not fit.
    package func parse(_ bytes: UnsafeRawBufferPointer, into records: inout [SocketRecord]) throws -> Outcome {
        var offset = 0
        while offset + Self.headerLength <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            guard length >= Self.headerLength, offset + length <= bytes.count else {
                throw ProbeError(.malformedReply, "sock_diag reply has a message of length \(length) at offset \(offset) of \(bytes.count)")
            }
            switch type {
            case Self.nlmsgDone:
                return .done
            case Self.nlmsgError:
                let code = length >= 20 ? bytes.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self) : 0
                if code == 0 { break }  // an ACK, not an error
                // The kernel sends -errno; clamped, because negating Int32.min traps (found by fuzzing).
                let error = Int32(clamping: -Int64(code))
                throw ProbeError(.netlinkUnavailable, "the kernel refused the sock_diag dump (error \(error))", errno: error)
            case InetDiagRequest.sockDiagByFamily:
                guard length >= Self.headerLength + Self.messageLength else {
                    throw ProbeError(.malformedReply, "sock_diag message of \(length) bytes is shorter than inet_diag_msg")
                }
                if var record = Self.record(bytes, at: offset + Self.headerLength) {
                    if readsInfo {
                        let attributes = offset + Self.headerLength + Self.messageLength
                        record.info = Self.info(bytes, from: attributes, to: offset + length)
                    }
                    records.append(record)
                }
            default:
                break
            }
            offset += (length + 3) & ~3
        }
        return .more
    }

    /// Decodes one `inet_diag_msg`; `nil` for a state number this build does not know.
    @inline(__always)
    static func record(_ b: UnsafeRawBufferPointer, at base: Int) -> SocketRecord? {
        let family = b[base]
        guard let state = TCPState(rawValue: b[base + 1]) else { return nil }
        let timerKind = b[base + 2]
        let retransmits = b[base + 3]
        let sport = UInt16(bigEndian: b.loadUnaligned(fromByteOffset: base + 4, as: UInt16.self))
        let dport = UInt16(bigEndian: b.loadUnaligned(fromByteOffset: base + 6, as: UInt16.self))
        let src = address(b, at: base + 8, family: family)
        let dst = address(b, at: base + 24, family: family)
        let cookieLow = UInt64(b.loadUnaligned(fromByteOffset: base + 44, as: UInt32.self))
        let cookieHigh = UInt64(b.loadUnaligned(fromByteOffset: base + 48, as: UInt32.self))
        let expires = b.loadUnaligned(fromByteOffset: base + 52, as: UInt32.self)
        let rqueue = b.loadUnaligned(fromByteOffset: base + 56, as: UInt32.self)
        let wqueue = b.loadUnaligned(fromByteOffset: base + 60, as: UInt32.self)
        let uid = b.loadUnaligned(fromByteOffset: base + 64, as: UInt32.self)
        let inode = b.loadUnaligned(fromByteOffset: base + 68, as: UInt32.self)
        let timer = SocketTimer.Kind(rawValue: timerKind).map {
            SocketTimer(kind: $0, expiresInMilliseconds: Int64(expires), retransmits: UInt32(retransmits))
        }
        return SocketRecord(
            state: state,
            local: Endpoint(address: src, port: sport),
            remote: Endpoint(address: dst, port: dport),
            recvQ: rqueue, sendQ: wqueue, timer: timer, uid: uid, inode: UInt64(inode),
            cookie: cookieHigh << 32 | cookieLow
        )
    }

    static let attributeInfo: UInt16 = 2  // INET_DIAG_INFO: struct tcp_info
    static let attributeMemory: UInt16 = 7  // INET_DIAG_SKMEMINFO: u32[SK_MEMINFO_VARS]

    /// Decodes the attributes after an `inet_diag_msg` (`struct rtattr`: u16 length, u16 type, 4-byte
    /// aligned). Fields the kernel did not send (an older, shorter `tcp_info`) stay absent; a length that runs
    /// past the message ends the walk.
    static func info(_ b: UnsafeRawBufferPointer, from start: Int, to end: Int) -> TCPInfo? {
        var info: TCPInfo?
        var memory: SocketMemory?
        var offset = start
        while offset + 4 <= end {
            let length = Int(b.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = b.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3FFF
            guard length >= 4, offset + length <= end else { break }
            let payload = offset + 4, size = length - 4
            func u8(_ at: Int) -> UInt8 { b[payload + at] }
            func u32(_ at: Int) -> UInt32 { b.loadUnaligned(fromByteOffset: payload + at, as: UInt32.self) }
            func u64(_ at: Int) -> UInt64? { at + 8 <= size ? b.loadUnaligned(fromByteOffset: payload + at, as: UInt64.self) : nil }
            if type == attributeInfo, size >= 104 {
                info = TCPInfo(
                    rttMicroseconds: u32(68), rttVarianceMicroseconds: u32(72), rtoMicroseconds: u32(8), congestionWindow: u32(80),
                    retransmits: u8(2), totalRetransmits: u32(100), backoff: u8(4), unacked: u32(24),
                    lastSendMilliseconds: u32(44), lastReceiveMilliseconds: u32(52), lastAckMilliseconds: u32(56),
                    bytesAcked: u64(120), bytesReceived: u64(128), deliveryRate: u64(160))
            } else if type == attributeMemory, size >= 36 {
                memory = SocketMemory(receiveQueued: u32(0), receiveBuffer: u32(4), sendQueued: u32(8), sendBuffer: u32(12), drops: u32(32))
            }
            offset += (length + 3) & ~3
        }
        if let memory {
            if info == nil { info = TCPInfo() }
            info?.memory = memory
        }
        return info
    }

    @inline(__always)
    static func address(_ b: UnsafeRawBufferPointer, at offset: Int, family: UInt8) -> IPAddress {
        if family == InetDiagRequest.familyIPv4 {
            return .v4(UInt32(bigEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        }
        return .v6(
            high: UInt64(bigEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            low: UInt64(bigEndian: b.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        )
    }
}
