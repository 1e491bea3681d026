import Foundation
import LingerCore
@testable import LingerProbe
import Testing

private func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
    return Array(try Data(contentsOf: url))
}

/// "STATE local peer" as `ss -tan` prints it, for comparing our records with ss's reading of the same bytes.
private func ssLine(_ record: SocketRecord) -> String {
    func endpoint(_ e: Endpoint) -> String {
        if e.port == 0 && e.address.isUnspecified {
            if case .v6 = e.address { return "*:*" }
        }
        if case .v6 = e.address, e.address.isUnspecified { return "*:\(e.port)" }
        return e.description
    }
    return "\(record.state.ssName) \(record.recvQ) \(record.sendQ) \(endpoint(record.local)) \(endpoint(record.remote))"
}

struct NetlinkParserTests {
    @Test func readsRecordedDumpsExactlyAsSsDoes() throws {
        var records: [SocketRecord] = []
        for name in ["sock-diag-v4.nldump", "sock-diag-v6.nldump"] {
            let bytes = try fixture(name)
            let outcome = try bytes.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) }
            #expect(outcome == .more || outcome == .done)
        }
        let reference = String(decoding: try fixture("ss-tan.txt"), as: UTF8.self)
            .split(separator: "\n").dropFirst()
            .map { $0.split(separator: " ").joined(separator: " ") }
        #expect(records.map(ssLine).sorted() == reference.sorted())
    }

    @Test func keepsTimersInodesAndCookies() throws {
        var records: [SocketRecord] = []
        _ = try fixture("sock-diag-v4.nldump").withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) }
        let timeWait = try #require(records.first { $0.state == .timeWait })
        #expect(timeWait.inode == 0 && timeWait.uid == 0)
        #expect(timeWait.timer?.kind == .timeWait)
        #expect((1...60_000).contains(timeWait.timer?.expiresInMilliseconds ?? -1))
        let finWait2 = records.filter { $0.state == .finWait2 }
        #expect(finWait2.filter(\.isOrphan).count == 1, "one client closed (orphan), one only shut down its side")
        #expect(finWait2.first { !$0.isOrphan }?.timer == nil)
        let listener = try #require(records.first { $0.state == .listen })
        #expect(listener.sendQ == 16, "netlink reports the backlog in sendQ")
        #expect(Set(records.map(\.cookie)).count == records.count, "cookies identify sockets")
        let synSent = try #require(records.first { $0.state == .synSent })
        #expect(synSent.timer?.kind == .retransmit)
    }

    @Test func refusesTruncatedOrLyingLengths() throws {
        var bytes = try fixture("sock-diag-v4.nldump")
        bytes[0] = 0xFF  // first message claims more bytes than there are
        var records: [SocketRecord] = []
        #expect(throws: ProbeError.self) { try bytes.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) } }
        var short = try fixture("sock-diag-v4.nldump")
        short.replaceSubrange(0..<4, with: [20, 0, 0, 0])  // a SOCK_DIAG message too short for inet_diag_msg
        #expect(throws: ProbeError.self) { try short.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) } }
    }

    /// One message: a fixture's first record, then INET_DIAG_INFO (a tcp_info with known values) and
    /// INET_DIAG_SKMEMINFO attributes, as the kernel lays them out.
    @Test func readsTCPInfoAndMemoryAttributes() throws {
        let dump = try fixture("sock-diag-v4.nldump")
        var message = Array(dump[0..<(16 + 72)])
        func put32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + 4), with: $0) }
        }
        var info = [UInt8](repeating: 0, count: 4 + 232)
        info[0] = UInt8(info.count & 0xFF); info[1] = UInt8(info.count >> 8); info[2] = 2
        info[4 + 2] = 5  // tcpi_retransmits
        info[4 + 4] = 3  // tcpi_backoff
        put32(1_632_000, at: 4 + 8, in: &info)  // rto
        put32(7, at: 4 + 24, in: &info)  // unacked
        put32(6_400, at: 4 + 56, in: &info)  // last_ack_recv
        put32(67, at: 4 + 68, in: &info)  // rtt
        put32(10, at: 4 + 80, in: &info)  // cwnd
        put32(9, at: 4 + 100, in: &info)  // total_retrans
        put32(4242, at: 4 + 120, in: &info)  // bytes_acked (low half)
        var memory = [UInt8](repeating: 0, count: 4 + 36)
        memory[0] = UInt8(memory.count); memory[2] = 7
        put32(131_072, at: 4 + 4, in: &memory)
        put32(3, at: 4 + 32, in: &memory)
        message += info + memory
        put32(UInt32(message.count), at: 0, in: &message)
        var records: [SocketRecord] = []
        _ = try message.withUnsafeBytes { try InetDiagReplyParser(readsInfo: true).parse($0, into: &records) }
        let parsed = try #require(records.first?.info)
        #expect(parsed.retransmits == 5 && parsed.backoff == 3 && parsed.rtoMicroseconds == 1_632_000)
        #expect(parsed.unacked == 7 && parsed.lastAckMilliseconds == 6_400 && parsed.rttMicroseconds == 67)
        #expect(parsed.congestionWindow == 10 && parsed.totalRetransmits == 9 && parsed.bytesAcked == 4242)
        #expect(parsed.memory == SocketMemory(receiveQueued: 0, receiveBuffer: 131_072, sendQueued: 0, sendBuffer: 0, drops: 3))
        // An attribute that claims more than the message holds is ignored, not read past.
        var lying = message
        lying[16 + 72] = 0xFF; lying[16 + 72 + 1] = 0x7F
        var again: [SocketRecord] = []
        _ = try lying.withUnsafeBytes { try InetDiagReplyParser(readsInfo: true).parse($0, into: &again) }
        #expect(again.count == 1 && again[0].info == nil)
    }

    @Test func reportsKernelErrors() throws {
        // nlmsghdr(len 36, NLMSG_ERROR) + errno -EPERM + the echoed header.
        var message: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        withUnsafeBytes(of: Int32(-1).littleEndian) { message += $0 }
        message += [UInt8](repeating: 0, count: 16)
        var records: [SocketRecord] = []
        #expect {
            try message.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) }
        } throws: { error in
            (error as? ProbeError)?.code == .netlinkUnavailable && (error as? ProbeError)?.errno == 1
        }
        let done: [UInt8] = [20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(try done.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) } == .done)
    }

    @Test func buildsTheRequestTheKernelExpects() {
        let bytes = InetDiagRequest(family: 2, states: TCPStateSet(.closeWait)).bytes
        #expect(bytes.count == 72)
        #expect(Array(bytes[0..<4]) == [72, 0, 0, 0])
        #expect(Array(bytes[4..<6]) == [20, 0], "SOCK_DIAG_BY_FAMILY")
        #expect(Array(bytes[6..<8]) == [0x01, 0x03], "NLM_F_REQUEST | NLM_F_DUMP")
        #expect(Array(bytes[16..<20]) == [2, 6, 0, 0], "AF_INET, IPPROTO_TCP, no extensions")
        #expect(Array(bytes[20..<24]) == [0, 1, 0, 0], "1 << CLOSE_WAIT")
    }
}

struct ProcParserTests {
    @Test func readsEveryStateOfTheRecordedTable() throws {
        let text = String(decoding: try fixture("proc-net-tcp.txt"), as: UTF8.self)
        let records = try ProcNetTCPParser().parse(text)
        #expect(records.count == 12)
        let states = Dictionary(grouping: records, by: \.state).mapValues(\.count)
        #expect(states == [.listen: 1, .established: 5, .closeWait: 2, .finWait2: 2, .timeWait: 1, .synSent: 1])

        let listener = try #require(records.first { $0.state == .listen })
        #expect(listener.local.description == "127.0.0.1:7001" && listener.inode == 16729)
        let synSent = try #require(records.first { $0.state == .synSent })
        #expect(synSent.local.description == "10.200.0.1:50586" && synSent.remote.description == "10.200.0.2:80")
        #expect(synSent.timer == SocketTimer(kind: .retransmit, expiresInMilliseconds: 510, retransmits: 1))
        #expect(synSent.sendQ == 1)
        let orphan = try #require(records.first { $0.state == .finWait2 && $0.inode == 0 })
        #expect(orphan.timer?.kind == .timeWait, "an orphaned FIN_WAIT2 is a timewait minisocket")
        let unread = try #require(records.first { $0.recvQ == 100 })
        #expect(unread.state == .established && unread.local.port == 0xE178)
        let closeWait = records.filter { $0.state == .closeWait }
        #expect(closeWait.allSatisfy { $0.recvQ == 1 }, "the unread FIN counts as one")
    }

    @Test func readsIPv6AndV4Mapped() throws {
        let text = String(decoding: try fixture("proc-net-tcp6.txt"), as: UTF8.self)
        let records = try ProcNetTCPParser().parse(text)
        #expect(records.map(\.local.description) == ["[::]:7006", "[::1]:42120", "[::ffff:127.0.0.1]:7006", "[::1]:7006"])
        #expect(records[2].remote.address.isV4Mapped && records[2].remote.port == 0xCD42)
    }

    @Test func filtersByStateWhileParsing() throws {
        let text = String(decoding: try fixture("proc-net-tcp.txt"), as: UTF8.self)
        let records = try ProcNetTCPParser().parse(text, states: TCPStateSet([.closeWait, .timeWait]))
        #expect(records.map(\.state).sorted() == [.timeWait, .closeWait, .closeWait])
    }

    /// Found by the proc-net-tcp fuzz target (2026-12-05, in CI): a 16-digit `when` above `Int64.max` trapped
    /// on `Int64(when)`, crashing the probe. The first input is the committed reproducer, minimized by hand to
    /// its one row.
    @Test func timerTicksOfAnyWidthReadAsSignedWithoutTrapping() throws {
        let reproducer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Regressions/proc-net-tcp-when-above-int64-max").standardized
        let rows = try ProcNetTCPParser().parse(try String(contentsOf: reproducer, encoding: .utf8))
        #expect(rows.count == 1 && rows.first?.local.port == 0x1B5E)

        func when(_ hex: String) throws -> Int64? {
            let text = "  sl  local_address rem_address   st\n"
                + "   0: 0100007F:1B59 0100007F:C350 01 00000000:00000000 01:\(hex) 00000002  1000        0 4242 1\n"
            return try #require(try ProcNetTCPParser().parse(text).first).timer?.expiresInMilliseconds
        }
        #expect(try when("00000033") == 510)
        #expect(try when("FFFFFFF6") == -100, "a 32-bit kernel's -10 ticks")
        #expect(try when("FFFFFFFFFFFFFFF6") == -100, "a 64-bit kernel's -10 ticks")
        #expect(try when("AAAAAA0000000000") == 0, "no kernel writes this; its low 32 bits are 0")
        #expect(try when("8000000000000000") == 0)
        #expect(try when("7FFFFFFF") == Int64(Int32.max) * 10)
    }

    @Test func namesTheLineThatDoesNotParse() {
        let text = "  sl  local_address rem_address   st\n   0: 0100007F:1B59 zz:0000 0A 0:0 00:0 0 0 0 1\n"
        #expect(throws: ProbeError.self) { try ProcNetTCPParser().parse(text) }
    }
}

struct KernelFileParserTests {
    @Test func readsCounterPairsAndSockstat() {
        var counters = [String: Int64]()
        KernelFileParsers.parseCounterPairs(
            "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 14\nIpExt: InNoRoutes\nIpExt: 3\n",
            into: &counters)
        KernelFileParsers.parseCounterPairs("Tcp: RtoAlgorithm ActiveOpens\nTcp: 1 77\n", into: &counters)
        KernelFileParsers.parseSockstat(
            "sockets: used 120\nTCP: inuse 5 orphan 1 tw 2 alloc 7 mem 1\nUDP: inuse 0 mem 0\n", into: &counters)
        #expect(counters["TcpExt:ListenOverflows"] == 12)
        #expect(counters["TcpExt:ListenDrops"] == 14)
        #expect(counters["IpExt:InNoRoutes"] == 3)
        #expect(counters["Tcp:ActiveOpens"] == 77)
        #expect(counters["sockstat:tw"] == 2 && counters["sockstat:orphan"] == 1 && counters["sockstat:inuse"] == 5)
    }

    @Test func readsPortRangeAndReservedPorts() {
        #expect(KernelFileParsers.parsePortRange("32768\t60999\n") == 32768...60999)
        #expect(KernelFileParsers.parsePortRange("garbage") == nil)
        #expect(KernelFileParsers.reservedPortCount("8000-8010,40000,40005-40009,70000\n", within: 32768...60999) == 6)
        #expect(KernelFileParsers.reservedPortCount("30000-32770\n", within: 32768...60999) == 3)
        #expect(KernelFileParsers.reservedPortCount("\n", within: 32768...60999) == 0)
    }

    /// Found by the inet-diag fuzz target: an NLMSG_ERROR carrying Int32.min trapped on negation instead of
    /// throwing. The input is the committed reproducer, minimized to its one 20-byte message.
    @Test func anErrorMessageWithAnyCodeThrowsAProbeError() throws {
        let reproducer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Regressions/inet-diag-error-code-int-min").standardized
        let bytes = try Data(contentsOf: reproducer)
        var records: [SocketRecord] = []
        #expect(throws: ProbeError.self) {
            _ = try bytes.withUnsafeBytes { try InetDiagReplyParser().parse($0, into: &records) }
        }
        #expect(records.isEmpty)
    }

    /// Found by the kernel-files fuzz target: overlapping items were counted twice, so the reserved ports came
    /// out above the range (and capacity's port budget below zero). The input is the committed reproducer.
    @Test func overlappingReservedPortsCountOnce() throws {
        let reproducer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Regressions/kernel-files-overlapping-reserved-ports").standardized
        let text = try String(contentsOf: reproducer, encoding: .utf8)
        #expect(KernelFileParsers.reservedPortCount(text, within: 32768...60999) == 28232)
        #expect(KernelFileParsers.reservedPortCount("40000-40010,40005-40020,40020\n", within: 32768...60999) == 21)
        #expect(KernelFileParsers.reservedPortCount("40005-40020,40000-40010,9000\n", within: 32768...60999) == 21)
    }
}

struct ProcessLimitsParserTests {
    @Test func readsTheSoftOpenFileLimit() {
        let text = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max open files            1024                 524288               files
            Max locked memory         8388608              8388608              bytes
            """
        #expect(KernelFileParsers.parseOpenFileLimit(text) == 1024)
        #expect(KernelFileParsers.parseOpenFileLimit("Max open files            unlimited            unlimited            files") == nil)
        #expect(KernelFileParsers.parseOpenFileLimit("") == nil)
    }
}
