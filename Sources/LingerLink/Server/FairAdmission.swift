/// Who may hold one of `--max-connections` sessions, and in what order the rest get theirs: a queue, not a
/// race. Pure (events in, verdicts out), so every rule is tested without sockets.
///
/// A follower holds its connection forever, so a plain limit let the first five of ten followers in for good
/// and left the others waiting with their lines (issue 34). Here a client id that was refused waits in line;
/// a free session goes to the head of the line first (a newcomer gets one only when more are free than are
/// waiting); and each refusal asks the session that has held its slot longest (at least `turn`) to yield it
/// (GOAWAY, retried like any other: its sender keeps what it has not shipped). The clients take turns.
struct FairAdmission {
    let limit: Int
    /// How long a session keeps its slot before it may be asked to yield to a waiting client.
    let turn: Duration
    /// A waiting client that has not asked again for this long has given up: it leaves the line.
    let forgetAfter: Duration

    private(set) var sessions: [ObjectIdentifier: Session] = [:]
    private(set) var waiting: [(clientID: String, lastSeen: ContinuousClock.Instant)] = []

    struct Session {
        var clientID: String
        var since: ContinuousClock.Instant
        var askedToYield = false
    }

    enum Verdict: Equatable {
        case admit
        /// Refused; `yielder` (if any) is asked to give its slot up.
        case refuse(yielder: ObjectIdentifier?)
    }

    init(limit: Int, turn: Duration = .seconds(5), forgetAfter: Duration = .seconds(60)) {
        self.limit = max(1, limit)
        self.turn = turn
        self.forgetAfter = forgetAfter
    }

    /// A connection said HELLO as `clientID`.
    mutating func hello(_ connection: ObjectIdentifier, clientID: String, now: ContinuousClock.Instant) -> Verdict {
        waiting.removeAll { now - $0.lastSeen > forgetAfter }
        let free = limit - sessions.count
        let place = waiting.firstIndex { $0.clientID == clientID }
        // A client id already in session is taking over from its older connection (fencing sends that one
        // away): never refused for the slot it already has.
        let takesOver = sessions.values.contains { $0.clientID == clientID }
        if takesOver || (free > 0 && (place.map { $0 < free } ?? (waiting.count < free))) {
            if let place { waiting.remove(at: place) }
            sessions[connection] = Session(clientID: clientID, since: now)
            return .admit
        }
        if let place { waiting[place].lastSeen = now } else { waiting.append((clientID, now)) }
        let longest = sessions.filter { !$0.value.askedToYield && now - $0.value.since >= turn }.min { $0.value.since < $1.value.since }
        if let (yielder, _) = longest { sessions[yielder]!.askedToYield = true }
        return .refuse(yielder: longest?.key)
    }

    /// A connection closed (or never got past HELLO).
    mutating func ended(_ connection: ObjectIdentifier) {
        sessions[connection] = nil
    }
}
