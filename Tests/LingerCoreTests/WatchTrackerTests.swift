import LingerCore
import Testing

struct WatchTrackerTests {
    private func closeWait(_ inodes: ClosedRange<UInt64>, pid: Int32 = 7, name: String = "leaky") -> [SocketRecord] {
        inodes.map { inode in
            SocketRecord(
                state: .closeWait, local: Endpoint(address: .v4(0x7F00_0001), port: 8080),
                remote: Endpoint(address: .v4(0x7F00_0001), port: UInt16(40000 + inode % 1000)), inode: inode,
                owners: [SocketOwner(pid: pid, name: name, fd: Int32(inode % 1000))])
        }
    }

    @Test func deltasAndAgesByInode() {
        var tracker = WatchTracker(leakAgeSeconds: 60)
        let first = tracker.update(Snapshot(records: closeWait(1...3), takenAt: 100))
        #expect(first.deltas == nil)
        #expect(first.closeWaitByProcess.first?.oldestAgeSeconds == 0)
        // 30 s later: inode 1 is gone, 2 and 3 remain, 4 is new.
        let second = tracker.update(Snapshot(records: closeWait(2...4), takenAt: 130))
        #expect(second.deltas?[.closeWait] == 0)
        #expect(second.closeWaitByProcess.first?.oldestAgeSeconds == 30)
        #expect(second.leaks.isEmpty)
        // 40 s later: 2 has now been stuck 70 s: a leak by age.
        let third = tracker.update(Snapshot(records: closeWait(2...2), takenAt: 170))
        #expect(third.deltas?[.closeWait] == -2)
        let leak = third.leaks.first
        #expect(leak?.pid == 7 && leak?.oldestAgeSeconds == 70)
        #expect(leak?.leakReason?.contains("stuck for 70 s") == true)
    }

    @Test func aRisingCountIsALeakBeforeAnySocketIsOld() {
        var tracker = WatchTracker(leakAgeSeconds: 600, risingSamples: 3)
        var report = tracker.update(Snapshot(records: closeWait(1...1), takenAt: 0))
        for (t, n) in [(10.0, 2), (20, 4), (30, 8)] {
            report = tracker.update(Snapshot(records: closeWait(1...UInt64(n)), takenAt: t))
        }
        let leak = report.leaks.first
        #expect(leak?.leakReason == "count rose at each of the last 3 intervals")
        #expect(leak?.growthPerMinute == 14, "from 1 to 8 in 30 s")
    }

    @Test func steadyPassingTrafficIsNotALeak() {
        var tracker = WatchTracker(leakAgeSeconds: 60, risingSamples: 3)
        var report = tracker.update(Snapshot(records: [], takenAt: 0))
        // Three sockets at a time, a new set every interval: each passes through in under 10 s.
        for step in 1...10 {
            let base = UInt64(step * 10)
            report = tracker.update(Snapshot(records: closeWait(base...base + 2), takenAt: Double(step * 10)))
        }
        #expect(report.leaks.isEmpty)
        #expect(report.closeWaitByProcess.first?.count == 3)
    }

    @Test func timeWaitPerDestinationWithPortShare() {
        let client = IPAddress.v4(0x0A00_0002), server = IPAddress.v4(0x0A00_0001)
        let records = (0..<50).map { i in
            SocketRecord(state: .timeWait, local: Endpoint(address: client, port: UInt16(40000 + i)), remote: Endpoint(address: server, port: 5432))
        } + [SocketRecord(state: .listen, local: Endpoint(address: server, port: 80), remote: Endpoint(address: .v4(0), port: 0)),
             SocketRecord(state: .timeWait, local: Endpoint(address: server, port: 80), remote: Endpoint(address: client, port: 50000))]
        let destinations = TimeWaitDestination.all(in: Snapshot(records: records, sysctls: TCPSysctls(localPortRange: 40000...40099)))
        #expect(destinations.count == 1, "server-side TIME_WAIT on a listening port holds no ephemeral port")
        #expect(destinations.first?.count == 50 && destinations.first?.portShare == 0.5 && destinations.first?.remotePort == 5432)
    }
}
