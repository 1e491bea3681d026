import LingerCore
import Testing

struct CapacityTests {
    @Test func aThousandPerSecondOnDefaultLinux() {
        let report = CapacityReport(CapacityInput(requestsPerSecond: 1000))
        // 1000/s × 60 s would be 60,000, but one destination has only 28,232 ports: connect() fails first.
        #expect(report.timeWaitSockets == 28_232, "capped at the ports, never an impossible count")
        #expect(report.portLimit == 28_232)
        #expect(report.timeWaitMemoryBytes == 28_232 * 256)
        #expect(report.connectFailsAfterSeconds.map { $0 > 28.2 && $0 < 28.3 } == true, "28,232 ports ÷ 1000/s")
        #expect(Int(report.maxNewConnectionsPerSecondPerDestination) == 470, "28,232 ports ÷ 60 s")
        #expect(report.headroom < 0.48 && report.headroom > 0.47)
        let fits = CapacityReport(CapacityInput(requestsPerSecond: 400))
        #expect(fits.timeWaitSockets == 24_000 && fits.portLimit == nil && fits.connectFailsAfterSeconds == nil, "400/s × 60 s fits")
    }

    @Test func whatLiftsTheCeiling() {
        let base = CapacityInput(requestsPerSecond: 1000)
        var pooled = base
        pooled.requestsPerConnection = 100
        #expect(CapacityReport(pooled).timeWaitSockets == 600 && CapacityReport(pooled).headroom > 40)
        var spread = base
        spread.destinations = 4
        spread.sourceAddresses = 2
        #expect(CapacityReport(spread).maxNewConnectionsPerSecond == 28232.0 * 2 / 60 * 4)
        var reuse = base
        reuse.timeWaitReuse = true
        #expect(CapacityReport(reuse).maxNewConnectionsPerSecondPerDestination == 28232, "one port per second each")
        #expect(CapacityReport(reuse).timeWaitSockets == 60_000, "reuse takes ports over; the population is still there")
        var serverCloses = base
        serverCloses.thisHostClosesFirst = false
        #expect(CapacityReport(serverCloses).timeWaitSockets == 0 && !CapacityReport(serverCloses).headroom.isFinite)
    }

    @Test func populationGrowsThenLevelsOff() {
        let report = CapacityReport(CapacityInput(requestsPerSecond: 200))
        #expect(report.timeWaitSockets(after: 5) == 1000)
        #expect(report.timeWaitSockets(after: 120) == 12_000)
    }
}
