import LingerCore
import Testing

/// Hand-made snapshots for the doctor's rules: no kernel involved.
private enum Make {
    static let loopback = IPAddress.v4(0x7F00_0001)
    static let server = IPAddress.v4(0x0A00_0001)
    static let client = IPAddress.v4(0x0A00_0002)

    static func socket(
        _ state: TCPState, local: IPAddress = server, _ localPort: UInt16, remote: IPAddress = client, _ remotePort: UInt16,
        recvQ: UInt32 = 0, sendQ: UInt32 = 0, inode: UInt64 = 0, owner: (Int32, String, Int32)? = nil
    ) -> SocketRecord {
        SocketRecord(
            state: state, local: Endpoint(address: local, port: localPort), remote: Endpoint(address: remote, port: remotePort),
            recvQ: recvQ, sendQ: sendQ, inode: inode,
            owners: owner.map { [SocketOwner(pid: $0.0, name: $0.1, fd: $0.2)] } ?? [])
    }

    static func closeWait(_ count: Int, pid: Int32 = 42, name: String = "java", recvQ: UInt32 = 1, firstInode: UInt64 = 1000) -> [SocketRecord] {
        (0..<count).map { i in
            socket(.closeWait, 8080, 40000 + UInt16(i), recvQ: recvQ, inode: firstInode + UInt64(i), owner: (pid, name, Int32(10 + i)))
        }
    }

    static func timeWait(_ count: Int, to port: UInt16 = 5432, from firstPort: UInt16 = 40000) -> [SocketRecord] {
        (0..<count).map { i in socket(.timeWait, local: client, firstPort + UInt16(i), remote: server, port) }
    }

    static let sysctls = TCPSysctls(
        localPortRange: 40000...40999, finTimeout: 60, twReuse: 0, maxTimeWaitBuckets: 262_144, somaxconn: 4096,
        timestamps: 1)
}

struct CloseWaitRuleTests {
    @Test func namesTheProcessAndEscalatesWithCount() throws {
        let few = Doctor().diagnose(Snapshot(records: Make.closeWait(4)))
        #expect(few.findings.isEmpty && few.status == .healthy)

        let some = Doctor().diagnose(Snapshot(records: Make.closeWait(5)))
        let finding = try #require(some.findings.first)
        #expect(finding.id == "close-wait" && finding.severity == .warning && some.status == .warning)
        #expect(finding.evidence["pid"] == .int(42))
        #expect(finding.evidence["process"] == .string("java"))
        #expect(finding.evidence["count"] == .int(5))
        #expect(finding.evidence["localPorts"] == .array([.int(8080)]))
        #expect(finding.summary.contains("java (pid 42)"))
        #expect(finding.remedy.contains("SO_REUSEADDR") && finding.remedy.contains("SO_LINGER"))

        let many = Doctor().diagnose(Snapshot(records: Make.closeWait(32)))
        #expect(many.findings.first?.severity == .critical && many.status == .critical)
    }

    @Test func groupsPerProcess() {
        let records = Make.closeWait(6, pid: 1, name: "a") + Make.closeWait(40, pid: 2, name: "b", firstInode: 5000)
        let findings = Doctor().diagnose(Snapshot(records: records)).findings
        #expect(findings.map(\.evidence["pid"]) == [.int(2), .int(1)])
        #expect(findings.map(\.severity) == [.critical, .warning])
    }

    @Test func tellsReadEOFFromUnreadData() throws {
        let records = Make.closeWait(3, recvQ: 0) + Make.closeWait(2, recvQ: 145, firstInode: 9000)
        let finding = try #require(Doctor().diagnose(Snapshot(records: records)).findings.first)
        #expect(finding.evidence["readEOF"] == .int(3))
        #expect(finding.evidence["withUnreadData"] == .int(2))
        #expect(finding.evidence["notReadToEOF"] == .int(2))
        // recv-Q 0 cannot tell a read that returned 0 from one that returned the last bytes and took the FIN
        // with them (the seed's Java NIO case): the doctor must not claim the former.
        let line = try #require(finding.evidenceLines.first { $0.hasPrefix("3 have recv-Q 0") })
        #expect(!line.contains("returned 0)") && !line.contains("read returned 0"), "\(line)")
        #expect(line.contains("up to its FIN"), "\(line)")
    }

    @Test func confirmCountsSocketsStillThereByInode() throws {
        let earlier = Snapshot(records: Make.closeWait(10), takenAt: 100)
        // Six of the ten remain (same inodes 1000...1005); four new ones arrived.
        let now = Snapshot(records: Array(Make.closeWait(6)) + Make.closeWait(4, firstInode: 7000), takenAt: 105)
        let finding = try #require(Doctor().diagnose(now, earlier: earlier).findings.first)
        #expect(finding.evidence["stuck"] == .int(6))
        #expect(finding.evidence["stillThereAfterSeconds"] == .double(5))
    }
}

struct TimeWaitRuleTests {
    @Test func warnsAtHalfTheRangeAndIsCriticalNearExhaustion() throws {
        let half = Doctor().diagnose(Snapshot(records: Make.timeWait(500), sysctls: Make.sysctls))
        let finding = try #require(half.findings.first)
        #expect(finding.id == "time-wait-ports" && finding.severity == .warning)
        #expect(finding.evidence["usablePorts"] == .int(1000))
        #expect(finding.evidence["timeWait"] == .int(500))
        #expect(finding.evidence["closesFirst"] == .string("client"))
        #expect(finding.evidence["remotePort"] == .int(5432))
        // 500 TIME_WAIT over a 60 s TIME_WAIT length: at least 8.3 new connections per second.
        #expect(finding.evidence["connectionsPerSecond"] == .double(8.3))

        let below = Doctor().diagnose(Snapshot(records: Make.timeWait(499), sysctls: Make.sysctls))
        #expect(below.findings.isEmpty)

        let nearlyAll = Doctor().diagnose(Snapshot(records: Make.timeWait(950), sysctls: Make.sysctls))
        #expect(nearlyAll.findings.first?.severity == .critical)
    }

    @Test func countsEveryStateOnTheTupleAgainstTheRange() throws {
        let established = (0..<300).map { i in
            Make.socket(.established, local: Make.client, 41000 + UInt16(i), remote: Make.server, 5432)
        }
        let finding = try #require(
            Doctor().diagnose(Snapshot(records: Make.timeWait(250) + established, sysctls: Make.sysctls)).findings.first)
        #expect(finding.evidence["inUse"] == .int(550))
    }

    @Test func reuseKeepsItBelowCritical() throws {
        var sysctls = Make.sysctls
        sysctls.twReuse = 1
        let finding = try #require(Doctor().diagnose(Snapshot(records: Make.timeWait(950), sysctls: sysctls)).findings.first)
        #expect(finding.severity == .warning)
        #expect(finding.evidence["twReuseApplies"] == .bool(true))
        // The default 2 covers loopback only.
        sysctls.twReuse = 2
        let remote = try #require(Doctor().diagnose(Snapshot(records: Make.timeWait(950), sysctls: sysctls)).findings.first)
        #expect(remote.evidence["twReuseApplies"] == .bool(false) && remote.severity == .critical)
    }

    @Test func serverSideTimeWaitCostsNoPorts() throws {
        let listener = Make.socket(.listen, 80, remote: .v4(0), 0)
        let records = [listener] + (0..<1200).map { i in
            Make.socket(.timeWait, 80, remote: Make.client, 30000 + UInt16(i))
        }
        let diagnosis = Doctor().diagnose(Snapshot(records: records, sysctls: Make.sysctls))
        let finding = try #require(diagnosis.findings.first)
        #expect(finding.id == "time-wait-server" && finding.severity == .info)
        #expect(finding.evidence["closesFirst"] == .string("server"))
        #expect(diagnosis.status == .healthy)
    }

    @Test func flagsBucketsAndOverflow() {
        var sysctls = Make.sysctls
        sysctls.maxTimeWaitBuckets = 100
        let counters = KernelCounters(["sockstat:tw": 90, "TcpExt:TCPTimeWaitOverflow": 7])
        let ids = Doctor().diagnose(Snapshot(records: [], counters: counters, sysctls: sysctls)).findings.map(\.id)
        #expect(ids == ["time-wait-buckets", "time-wait-overflow"])
    }
}

struct OtherRuleTests {
    @Test func heldFinWait2IsALeakOrphansAreNot() throws {
        let held = (0..<5).map { i in Make.socket(.finWait2, local: Make.client, 42000 + UInt16(i), remote: Make.server, 80, inode: 500 + UInt64(i), owner: (7, "proxy", Int32(i))) }
        let orphans = (0..<499).map { i in Make.socket(.finWait2, local: Make.client, 43000 + UInt16(i), remote: Make.server, 80) }
        let findings = Doctor().diagnose(Snapshot(records: held + orphans, sysctls: Make.sysctls)).findings
        let finding = try #require(findings.first)
        #expect(findings.count == 1)
        #expect(finding.id == "fin-wait-2" && finding.evidence["held"] == .bool(true) && finding.evidence["pid"] == .int(7))
        #expect(finding.cause.contains("tcp_fin_timeout applies only to orphaned sockets"))

        let moreOrphans = orphans + [Make.socket(.finWait2, local: Make.client, 50000, remote: Make.server, 80)]
        let orphanFinding = try #require(Doctor().diagnose(Snapshot(records: moreOrphans, sysctls: Make.sysctls)).findings.first)
        #expect(orphanFinding.evidence["held"] == .bool(false) && orphanFinding.evidence["finTimeoutSeconds"] == .int(60))
    }

    @Test func fullAcceptQueueIsCritical() throws {
        let full = Make.socket(.listen, 8080, remote: .v4(0), 0, recvQ: 5, sendQ: 4, inode: 1, owner: (9, "node", 3))
        let diagnosis = Doctor().diagnose(Snapshot(records: [full], counters: KernelCounters(["TcpExt:ListenOverflows": 12])))
        let finding = try #require(diagnosis.findings.first)
        #expect(finding.id == "listen-overflow" && finding.severity == .critical)
        #expect(finding.evidence["backlog"] == .int(4) && finding.evidence["queued"] == .int(5) && finding.evidence["pid"] == .int(9))

        let filling = Make.socket(.listen, 8080, remote: .v4(0), 0, recvQ: 80, sendQ: 100)
        #expect(Doctor().diagnose(Snapshot(records: [filling])).findings.first?.severity == .warning)
        let fine = Make.socket(.listen, 8080, remote: .v4(0), 0, recvQ: 3, sendQ: 100)
        #expect(Doctor().diagnose(Snapshot(records: [fine])).findings.isEmpty)
    }

    @Test func overflowCountersAloneAreANoteUnlessTheyGrow() throws {
        let old = KernelCounters(["TcpExt:ListenOverflows": 3, "TcpExt:ListenDrops": 3])
        let note = try #require(Doctor().diagnose(Snapshot(records: [], counters: old)).findings.first)
        #expect(note.severity == .info)
        let grown = KernelCounters(["TcpExt:ListenOverflows": 9, "TcpExt:ListenDrops": 9])
        let earlier = Snapshot(records: [], takenAt: 0, counters: old)
        let growing = try #require(Doctor().diagnose(Snapshot(records: [], takenAt: 10, counters: grown), earlier: earlier).findings.first)
        #expect(growing.severity == .warning && growing.evidence["recentOverflows"] == .int(6))
    }

    @Test func synSentPileUpPerDestination() throws {
        let pending = (0..<12).map { i in Make.socket(.synSent, local: Make.client, 44000 + UInt16(i), remote: Make.server, 443) }
        let finding = try #require(Doctor().diagnose(Snapshot(records: pending)).findings.first)
        #expect(finding.id == "syn-sent" && finding.severity == .warning && finding.evidence["count"] == .int(12))
        #expect(Doctor().diagnose(Snapshot(records: Array(pending.prefix(9)))).findings.isEmpty)
    }

    @Test func mostSevereFirstAndHealthyCounts() {
        let records = Make.closeWait(6) + Make.closeWait(40, pid: 2, name: "b", firstInode: 5000)
            + [Make.socket(.established, 1, 2)]
        let diagnosis = Doctor().diagnose(Snapshot(records: records))
        #expect(diagnosis.findings.map(\.severity) == [.critical, .warning])
        #expect(diagnosis.counts[.closeWait] == 46 && diagnosis.counts[.established] == 1 && diagnosis.counts[.listen] == 0)
        #expect(diagnosis.status.exitCode == 2)
        let healthy = Doctor().diagnose(Snapshot(records: [Make.socket(.established, 1, 2)]))
        #expect(healthy.status == .healthy && healthy.status.exitCode == 0 && healthy.total == 1)
    }
}

struct ExplainTests {
    @Test func timeWaitIsSixtySecondsAndNotTunable() {
        let text = StateExplanation(.timeWait, sysctls: Make.sysctls).text
        #expect(text.contains("60 seconds, fixed"))
        #expect(text.contains("tcp_fin_timeout has no effect"))
    }

    @Test func finWait2UsesThisMachinesTimeoutAndSaysHeldSocketsWaitForever() {
        var sysctls = Make.sysctls
        sysctls.finTimeout = 17
        let text = StateExplanation(.finWait2, sysctls: sysctls).timer
        #expect(text.contains("tcp_fin_timeout (17 s on this machine)"))
        #expect(text.contains("no timer at all"))
    }

    @Test func closeWaitHasNoTimerAndSynSentBackoffFollowsRetries() {
        #expect(StateExplanation(.closeWait).timer.hasPrefix("None"))
        var sysctls = TCPSysctls()
        sysctls.synRetries = 6
        #expect(StateExplanation(.synSent, sysctls: sysctls).timer.contains("about 127 s"))
        for state in TCPState.allCases { #expect(!StateExplanation(state).ifMany.isEmpty) }
    }
}

struct OrphanedSocketFDRuleTests {
    private func findings(_ held: [OrphanedSocketDescriptors]?) -> [Finding] {
        Doctor(rules: [OrphanedSocketFDs()]).diagnose(Snapshot(records: [], orphanedSocketDescriptors: held)).findings
    }

    @Test func countAndShareOfTheLimitDecideTheSeverity() throws {
        let fds = (0..<50).map { Int32(4 + $0) }
        let warning = try #require(findings([OrphanedSocketDescriptors(pid: 7, name: "api", fds: fds, openFileLimit: 1024)]).first)
        #expect(warning.severity == .warning)
        #expect(warning.summary == "api (pid 7) holds 50 descriptors of TCP sockets that are no longer in the TCP table")
        #expect(warning.evidenceLines.contains { $0.contains("4.9% of its open-file limit (1024") })
        let nearLimit = findings([OrphanedSocketDescriptors(pid: 7, name: "api", fds: fds, openFileLimit: 64)])
        #expect(nearLimit.first?.severity == .critical, "50 of 64 descriptors")
        #expect(findings([OrphanedSocketDescriptors(pid: 7, name: "api", fds: [4, 5, 6], openFileLimit: 1024)]).isEmpty, "a few pass through")
        #expect(findings(nil).isEmpty, "no walk, no finding")
    }
}

struct UnreachablePeerRuleTests {
    private func writer(_ retransmits: UInt32, state: TCPState = .established, sendQ: UInt32 = 480, port: UInt16 = 41000) -> SocketRecord {
        SocketRecord(
            state: state, local: Endpoint(address: .v4(0x0A00_0001), port: port), remote: Endpoint(address: .v4(0x0A00_0002), port: 7002),
            sendQ: sendQ, timer: SocketTimer(kind: .retransmit, expiresInMilliseconds: 800, retransmits: retransmits),
            inode: 99, owners: [SocketOwner(pid: 12, name: "client", fd: 3)])
    }

    private func findings(_ records: [SocketRecord]) -> [Finding] {
        var sysctls = TCPSysctls()
        sysctls.retries2 = 15
        return Doctor(rules: [UnreachablePeer()]).diagnose(Snapshot(records: records, sysctls: sysctls)).findings
    }

    @Test func groupsByProcessAndPeerAndSaysWhatTheKernelWillDo() throws {
        let finding = try #require(findings([writer(5), writer(3, port: 41001)]).first)
        #expect(finding.severity == .warning)
        #expect(finding.summary == "client (pid 12) is sending to 10.0.0.2, which acknowledges nothing (5 retransmissions)")
        #expect(finding.evidenceLines.contains { $0.contains("gives up after 15 retransmissions") })
        #expect(finding.remedy.contains("TCP_USER_TIMEOUT"))
        #expect(findings([writer(9)]).first?.severity == .critical)
    }

    @Test func aFewRetransmissionsOrOtherTimersAreNotAnAlarm() {
        #expect(findings([writer(2)]).isEmpty)
        var keepalive = writer(5)
        keepalive.timer = SocketTimer(kind: .keepalive, expiresInMilliseconds: 1000, retransmits: 5)
        #expect(findings([keepalive]).isEmpty, "keepalive probes are another rule's business")
        #expect(findings([writer(5, state: .synSent)]).isEmpty, "a connect that never completes is syn-sent's")
    }

    @Test func dataUnacknowledgedForSecondsCountsBeforeManyRetransmissions() throws {
        var slowPath = writer(1)
        slowPath.info = TCPInfo(unacked: 4, lastAckMilliseconds: 7_000)
        let finding = try #require(findings([slowPath]).first)
        #expect(finding.evidenceLines.contains("the last acknowledgement arrived 7 s ago (tcp_info)"))
        var fresh = writer(1)
        fresh.info = TCPInfo(unacked: 4, lastAckMilliseconds: 200)
        #expect(findings([fresh]).isEmpty)
        var idle = writer(1)
        idle.info = TCPInfo(unacked: 0, lastAckMilliseconds: 60_000)
        #expect(findings([idle]).isEmpty, "nothing unacknowledged: idle, not unreachable")
    }
}

struct IdleWithoutKeepaliveRuleTests {
    private func connection(idleSeconds: UInt32, timer: SocketTimer? = nil, port: UInt16 = 5432) -> SocketRecord {
        SocketRecord(
            state: .established, local: Endpoint(address: .v4(0x0A00_0001), port: 40000), remote: Endpoint(address: .v4(0x0A00_0002), port: port),
            timer: timer, inode: 5, info: TCPInfo(lastSendMilliseconds: idleSeconds * 1000, lastReceiveMilliseconds: idleSeconds * 1000))
    }

    @Test func longIdleConnectionsWithoutKeepaliveAreANoteNotAnAlarm() throws {
        let doctor = Doctor(rules: [IdleWithoutKeepalive()])
        let diagnosis = doctor.diagnose(Snapshot(records: [connection(idleSeconds: 900), connection(idleSeconds: 700, port: 6379)]))
        let finding = try #require(diagnosis.findings.first)
        #expect(finding.severity == .info && diagnosis.status == .healthy)
        #expect(finding.summary == "2 ESTABLISHED connections have been idle for over 600 s with keepalive off")
        let keepalive = SocketTimer(kind: .keepalive, expiresInMilliseconds: 60_000, retransmits: 0)
        #expect(doctor.diagnose(Snapshot(records: [connection(idleSeconds: 900, timer: keepalive)])).findings.isEmpty, "keepalive on")
        #expect(doctor.diagnose(Snapshot(records: [connection(idleSeconds: 30)])).findings.isEmpty, "not idle long")
        var noInfo = connection(idleSeconds: 900)
        noInfo.info = nil
        #expect(doctor.diagnose(Snapshot(records: [noInfo])).findings.isEmpty, "no tcp_info (/proc): nothing claimed")
    }
}

struct OtherSystemFactsTests {
    @Test func timeWaitOnEachSystemSaysItsLengthAndWhereThatComesFrom() {
        let windows = OtherSystemFacts(.timeWait, on: .windows)
        #expect(windows.facts.first?.contains("TcpTimedWaitDelay") == true && windows.facts.first?.contains("240 s") == true)
        #expect(windows.sources.contains { $0.contains("TcpTimedWaitDelay") })
        #expect(OtherSystemFacts(.timeWait, on: .macos).facts.first?.contains("30 seconds") == true)
        #expect(OtherSystemFacts(.timeWait, on: .freebsd).facts.contains { $0.contains("nolocaltimewait") })
    }

    @Test func whatWasNotCheckedIsSaidNotGuessed() {
        for system in [OperatingSystem.macos, .windows] {
            let facts = OtherSystemFacts(.synSent, on: system)
            #expect(facts.facts.first?.hasPrefix("Linger has no checked facts about SYN_SENT on \(system.displayName)") == true)
        }
        #expect(OtherSystemFacts(.closeWait, on: .windows).facts.first?.contains("no timer") == true)
    }
}
