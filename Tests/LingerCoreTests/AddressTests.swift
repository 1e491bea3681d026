import LingerCore
import Testing

struct AddressTests {
    @Test(arguments: [
        ("::1", "::1"), ("::", "::"), ("fe80::1:2", "fe80::1:2"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"),
    ])
    func formatsIPv6LikeInetNtop(_ input: String, _ expected: String) throws {
        let address = try #require(IPAddress(input))
        #expect(address.description == expected)
    }

    @Test func formatsIPv4AndEndpoints() throws {
        let address = try #require(IPAddress("10.1.200.3"))
        #expect(address == .v4(0x0A01_C803))
        #expect(Endpoint(address: address, port: 443).description == "10.1.200.3:443")
        #expect(Endpoint(address: .v6(high: 0, low: 1), port: 80).description == "[::1]:80")
        #expect(Endpoint(address: .v4(0), port: 0).description == "0.0.0.0:*")
    }

    @Test func rejectsMalformedAddresses() {
        for text in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "::1::2", "12345::", "abc", "", "1:2:3:4:5:6:7:8:9"] {
            #expect(IPAddress(text) == nil, "\(text)")
        }
    }

    @Test func v4MappedAddressesKnowTheirIPv4() throws {
        let mapped = try #require(IPAddress("::ffff:10.0.0.7"))
        #expect(mapped.isV4Mapped)
        #expect(mapped.unmappedIPv4 == 0x0A00_0007)
        #expect(try #require(IPAddress("::ffff:127.0.0.1")).isLoopback)
    }

    @Test func cidrRangesMatchBothFamilies() throws {
        let tenNet = try #require(AddressRange("10.0.0.0/8"))
        #expect(tenNet.contains(.v4(0x0A01_0203)))
        #expect(!tenNet.contains(.v4(0x0B00_0001)))
        #expect(tenNet.contains(try #require(IPAddress("::ffff:10.9.9.9"))))
        let host = try #require(AddressRange("127.0.0.1"))
        #expect(host.contains(.v4(0x7F00_0001)) && !host.contains(.v4(0x7F00_0002)))
        let linkLocal = try #require(AddressRange("fe80::/10"))
        #expect(linkLocal.contains(try #require(IPAddress("fe80::1"))))
        #expect(!linkLocal.contains(try #require(IPAddress("2001:db8::1"))))
        #expect(!linkLocal.contains(.v4(0x7F00_0001)))
        #expect(try #require(AddressRange("0.0.0.0/0")).contains(.v4(0xC0A8_0101)))
    }

    @Test func rejectsMalformedRangesAndPorts() {
        #expect(AddressRange("10.0.0.0/33") == nil)
        #expect(AddressRange("10.0.0.0/-1") == nil)
        #expect(AddressRange("::/129") == nil)
        #expect(AddressRange("nonsense/8") == nil)
        #expect(PortRange("0") == nil)
        #expect(PortRange("65536") == nil)
        #expect(PortRange("80-70") == nil)
        #expect(PortRange("http") == nil)
        #expect(PortRange("8000-8010") == PortRange(8000, 8010))
    }
}
