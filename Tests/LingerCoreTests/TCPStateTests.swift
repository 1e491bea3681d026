import LingerCore
import Testing

struct TCPStateTests {
    @Test(arguments: ["close-wait", "CLOSE-WAIT", "CLOSE_WAIT", "closewait", "Close_Wait"])
    func acceptsEverySpellingOfCloseWait(_ name: String) {
        #expect(TCPState(name: name) == .closeWait)
    }

    @Test func acceptsSsSpellings() {
        #expect(TCPState(name: "estab") == .established)
        #expect(TCPState(name: "fin-wait-1") == .finWait1)
        #expect(TCPState(name: "syn-recv") == .synRecv)
        #expect(TCPState(name: "time-wait") == .timeWait)
    }

    @Test func rejectsUnknownNames() {
        #expect(TCPState(name: "half-open") == nil)
        #expect(TCPState(name: "") == nil)
        #expect(TCPStateSet(name: "closed-ish") == nil)
    }

    @Test func kernelNamesAreTheContract() {
        #expect(TCPState.allNames == [
            "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT",
            "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
        ])
        #expect(TCPState(rawValue: 8) == .closeWait)
        #expect(TCPState(rawValue: 10) == .listen)
    }

    @Test func groupsMatchSs() {
        // misc/ss.c: SS_CONN drops LISTEN, CLOSE, TIME_WAIT and SYN_RECV; synchronized also drops SYN_SENT.
        #expect(TCPStateSet.connected.states == [.established, .synSent, .finWait1, .finWait2, .closeWait, .lastAck, .closing])
        #expect(TCPStateSet.synchronized.states == [.established, .finWait1, .finWait2, .closeWait, .lastAck, .closing])
        #expect(TCPStateSet.bucket.states == [.synRecv, .timeWait, .newSynRecv])
        #expect(!TCPStateSet.big.contains(.timeWait))
        #expect(TCPStateSet.big.contains(.listen))
        #expect(TCPStateSet(name: "connected") == .connected)
        #expect(TCPStateSet(.closeWait).rawValue == 1 << 8)
        #expect(TCPStateSet.all.rawValue == 0x1FFE)
    }
}
