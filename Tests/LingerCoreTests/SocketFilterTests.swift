import LingerCore
import Testing

struct SocketFilterTests {
    let web = SocketRecord(
        state: .established, local: Endpoint(address: .v4(0x0A00_0001), port: 8080),
        remote: Endpoint(address: .v4(0xC0A8_0005), port: 51000), inode: 7,
        owners: [SocketOwner(pid: 42, name: "java", fd: 9)])

    @Test func everyConditionMustHold() throws {
        #expect(SocketFilter().matches(web))
        #expect(SocketFilter(states: TCPStateSet(.established), localPorts: [PortRange(8080)]).matches(web))
        #expect(!SocketFilter(states: TCPStateSet(.closeWait)).matches(web))
        #expect(!SocketFilter(localPorts: [PortRange(80)]).matches(web))
        #expect(SocketFilter(remotePorts: [PortRange(50000, 52000)]).matches(web))
        #expect(SocketFilter(addresses: [try #require(AddressRange("192.168.0.0/16"))]).matches(web))
        #expect(!SocketFilter(addresses: [try #require(AddressRange("172.16.0.0/12"))]).matches(web))
        #expect(SocketFilter(pids: [42]).matches(web))
        #expect(!SocketFilter(pids: [43]).matches(web))
        #expect(SocketFilter(processNames: ["java"]).matches(web))
        #expect(!SocketFilter(processNames: ["nginx"]).matches(web))
    }

    @Test func ownerFiltersAskForOwners() {
        #expect(!SocketFilter(states: .connected).needsOwners)
        #expect(SocketFilter(pids: [1]).needsOwners)
        #expect(SocketFilter(processNames: ["x"]).needsOwners)
    }
}
