@testable import LingerLink
import Testing

/// `--max-connections` with more followers than slots: every rule of the queue, without sockets.
struct FairAdmissionTests {
    private final class Connection {}

    @Test func tenFollowersOnFiveSlotsAllGetTheirTurn() {
        var admission = FairAdmission(limit: 5, turn: .seconds(5))
        let start = ContinuousClock.now
        var now = start
        var holding: [String: Connection] = [:]
        var served: Set<String> = []
        let senders = (0..<10).map { "follower-\($0)" }
        // Every sender tries every half second; one asked to yield leaves and tries again like the others.
        for _ in 0..<120 {
            now += .milliseconds(500)
            for sender in senders where holding[sender] == nil {
                let connection = Connection()
                switch admission.hello(ObjectIdentifier(connection), clientID: sender, now: now) {
                case .admit:
                    holding[sender] = connection
                    served.insert(sender)
                case .refuse(let yielder):
                    if let yielder, let (name, held) = holding.first(where: { ObjectIdentifier($0.value) == yielder }) {
                        admission.ended(ObjectIdentifier(held))
                        holding[name] = nil
                    }
                }
            }
            #expect(admission.sessions.count <= 5)
        }
        #expect(served == Set(senders), "every follower was let in within a minute: \(served.sorted())")
    }

    @Test func aFreeSlotGoesToTheHeadOfTheLineNotToANewcomer() {
        var admission = FairAdmission(limit: 1, turn: .seconds(5))
        let now = ContinuousClock.now
        let a = Connection(), b = Connection(), c = Connection(), d = Connection()
        #expect(admission.hello(ObjectIdentifier(a), clientID: "a", now: now) == .admit)
        #expect(admission.hello(ObjectIdentifier(b), clientID: "b", now: now) == .refuse(yielder: nil), "a has not had its turn yet")
        admission.ended(ObjectIdentifier(a))
        #expect(admission.hello(ObjectIdentifier(c), clientID: "c", now: now) == .refuse(yielder: nil), "b waits first")
        #expect(admission.hello(ObjectIdentifier(d), clientID: "b", now: now) == .admit)
        #expect(admission.hello(ObjectIdentifier(a), clientID: "a", now: now + .seconds(6)) == .refuse(yielder: ObjectIdentifier(d)),
                "b has held its slot a whole turn: it is asked to yield")
    }

    @Test func aTakeoverOfTheSameClientIDIsNeverRefusedAndTheLineForgetsTheGone() {
        var admission = FairAdmission(limit: 1, turn: .seconds(5), forgetAfter: .seconds(10))
        let now = ContinuousClock.now
        let old = Connection(), new = Connection(), gone = Connection(), later = Connection()
        #expect(admission.hello(ObjectIdentifier(old), clientID: "web-1", now: now) == .admit)
        #expect(admission.hello(ObjectIdentifier(new), clientID: "web-1", now: now) == .admit, "fencing sends the old one away")
        admission.ended(ObjectIdentifier(old))
        admission.ended(ObjectIdentifier(new))
        #expect(admission.hello(ObjectIdentifier(gone), clientID: "x", now: now) == .admit)
        admission.ended(ObjectIdentifier(gone))
        _ = admission.hello(ObjectIdentifier(later), clientID: "y", now: now)
        #expect(admission.waiting.isEmpty)
    }
}
