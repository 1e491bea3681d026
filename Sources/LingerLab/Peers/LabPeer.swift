@preconcurrency import Glibc

/// The lab's peers: `linger lab-peer ROLE --key value ...`, re-executed by the lab inside its namespace.
/// Each prints `ready ...` once set up and `done ...` with its measurements, then holds its sockets until
/// SIGTERM so the lab can look at them.
public enum LabPeer {
    public static func main(_ arguments: [String]) -> Never {
        signal(SIGPIPE, SIG_IGN)
        guard let role = arguments.first else { fail("lab-peer needs a role") }
        var options: [String: String] = [:]
        var i = 1
        while i < arguments.count {
            let key = arguments[i]
            guard key.hasPrefix("--"), i + 1 < arguments.count else { fail("bad argument \(key)") }
            options[String(key.dropFirst(2))] = arguments[i + 1]
            i += 2
        }
        func int(_ key: String, _ fallback: Int) -> Int { options[key].flatMap { Int($0) } ?? fallback }
        let port = UInt16(int("port", 7000))
        switch role {
        case "server":
            Server(port: port, behavior: options["behavior"] ?? "close-on-eof", reuseAddress: int("reuseaddr", 1) == 1,
                   host: options["host"] ?? "127.0.0.1").run()
        case "reconnect-client":
            reconnectClient(port: port, correct: options["mode"] == "correct", connections: int("connections", 100),
                            fdLimit: int("fd-limit", 0), intervalMilliseconds: int("interval-ms", 10))
        case "clients":
            clients(port: port, count: int("count", 1), then: options["then"] ?? "hold", send: options["send"])
        case "churn":
            churn(port: port, rate: Double(int("rate", 100)), seconds: Double(int("seconds", 5)),
                  closer: options["closer"] ?? "client", persistent: int("persistent", 0) == 1,
                  host: options["host"] ?? "127.0.0.1",
                  ports: options["ports"].map { $0.split(separator: ",").compactMap { UInt16($0) } } ?? [port],
                  sources: options["sources"].map { $0.split(separator: ",").map(String.init) } ?? [])
        case "goodbye-server":
            goodbyeServer(port: port, style: options["style"] ?? "graceful", replySize: int("reply-size", 0),
                          workMilliseconds: int("work-ms", 0))
        case "goodbye-client":
            goodbyeClient(port: port, trials: int("trials", 10), extraBytes: int("extra-bytes", 0),
                          readDelayMilliseconds: int("read-delay-ms", 0))
        case "tw-syn":
            timeWaitSYN(port: port, clientPort: UInt16(int("client-port", 45000)), sequence: options["sequence"] ?? "newer",
                        timestamp: options["timestamp"] ?? "none")
        case "half-open-client":
            halfOpenClient(host: options["host"] ?? "127.0.0.1", port: port, userTimeoutMilliseconds: int("user-timeout-ms", 0))
        case "bind":
            switch POSIX.listen(port: port, reuseAddress: int("reuseaddr", 1) == 1) {
            case .success(let fd):
                report("ready bind=ok")
                close(fd)
            case .failure(let error):
                report("ready bind=\(error.description)")
            }
            exit(0)
        default:
            fail("unknown lab-peer role \(role)")
        }
    }

    /// Writes a line every 100 ms. With `userTimeoutMilliseconds` > 0 it is the careful client: TCP_USER_TIMEOUT
    /// bounds how long written data may stay unacknowledged, and keepalive (1 s idle, 1 s apart, 3 probes) finds a
    /// silent peer while idle. It prints `detected at=REALTIME_MS error=NAME` when a write or poll reports the
    /// failure, then holds until SIGTERM like every peer.
    static func halfOpenClient(host: String, port: UInt16, userTimeoutMilliseconds: Int) -> Never {
        guard case .success(let fd) = POSIX.connect(host: host, port: port) else { fail("connect \(host):\(port)") }
        if userTimeoutMilliseconds > 0 {
            func set(_ level: Int32, _ name: Int32, _ value: Int32) {
                var value = value
                setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
            }
            set(Int32(IPPROTO_TCP), 18 /* TCP_USER_TIMEOUT */, Int32(userTimeoutMilliseconds))
            set(SOL_SOCKET, SO_KEEPALIVE, 1)
            set(Int32(IPPROTO_TCP), 4 /* TCP_KEEPIDLE */, 1)
            set(Int32(IPPROTO_TCP), 5 /* TCP_KEEPINTVL */, 1)
            set(Int32(IPPROTO_TCP), 6 /* TCP_KEEPCNT */, 3)
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        report("ready half-open-client port=\(UInt16(bigEndian: local.sin_port))")
        var detected = false
        while true {
            usleep(100_000)
            guard !detected else { continue }
            var entry = pollfd(fd: fd, events: 0, revents: 0)
            let broken = poll(&entry, 1, 0) > 0 && entry.revents & Int16(POLLERR | POLLHUP) != 0
            if broken || !POSIX.send(fd, "still here\n") {
                var code: Int32 = 0
                var size = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size)
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                report("detected at=\(Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000) error=\(POSIX.errorName(code == 0 ? errno : code))")
                detected = true
            }
        }
    }

    static func fail(_ message: String) -> Never {
        fputs("linger lab-peer: \(message)\n", stderr)
        exit(2)
    }

    // MARK: - lost-goodbye

    static let goodbye = "ERROR wrong password\n"

    /// Rejects every login: reads one chunk (the login line, maybe not everything the client sent), writes
    /// `reply-size` bytes of filler ending with the goodbye line, then closes in the given style:
    /// `abortive` (SO_LINGER {1,0}: RST), `close` (plain close()), `graceful` (shutdown(SHUT_WR), read to
    /// EOF with a 2 s deadline, then close).
    static func goodbyeServer(port: UInt16, style: String, replySize: Int, workMilliseconds: Int) -> Never {
        guard case .success(let listener) = POSIX.listen(port: port, reuseAddress: true) else { fail("listen \(port)") }
        report("ready goodbye-server style=\(style)")
        var reply = [UInt8](repeating: UInt8(ascii: "."), count: max(0, replySize - goodbye.utf8.count))
        reply += Array(goodbye.utf8)
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            _ = read(fd, &chunk, chunk.count)
            // "Checking the password": long enough for the rest of what the client sent to arrive unread.
            if workMilliseconds > 0 { usleep(UInt32(workMilliseconds * 1000)) }
            var written = 0
            while written < reply.count {
                let n = reply.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + written, reply.count - written, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                written += n
            }
            switch style {
            case "abortive": POSIX.abortiveClose(fd)
            case "graceful":
                shutdown(fd, Int32(SHUT_WR))
                var timeout = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                while POSIX.readSome(fd) > 0 {}
                close(fd)
            default: close(fd)
            }
        }
    }

    /// Logs in `trials` times with a wrong password and counts how often the server's goodbye arrived whole.
    static func goodbyeClient(port: UInt16, trials: Int, extraBytes: Int, readDelayMilliseconds: Int) -> Never {
        report("ready goodbye-client")
        var delivered = 0, resets = 0, bytesShort = 0
        for _ in 0..<trials {
            guard case .success(let fd) = POSIX.connect(port: port) else { continue }
            var sendFailed = !POSIX.send(fd, "LOGIN alice wrong-password\n")
            if extraBytes > 0 && !sendFailed { sendFailed = !POSIX.send(fd, String(repeating: "x", count: extraBytes)) }
            if readDelayMilliseconds > 0 { usleep(UInt32(readDelayMilliseconds * 1000)) }
            let (data, cleanEOF) = POSIX.readToEnd(fd)
            // A reset shows up on whichever call meets it first: the send of the extra data, or the read.
            if !cleanEOF || sendFailed { resets += 1 }
            if data.count >= goodbye.utf8.count && Array(data.suffix(goodbye.utf8.count)) == Array(goodbye.utf8) {
                delivered += 1
            } else {
                bytesShort += 1
            }
            close(fd)
        }
        report("done delivered=\(delivered) trials=\(trials) resets=\(resets)")
        holdUntilTerminated()
    }

    // MARK: - time-wait-syn

    /// Leaves a TIME_WAIT on the server side of 127.0.0.1:clientPort → 127.0.0.1:port (the server greets and
    /// closes first), learns the client's last sequence number and timestamp from its FIN, then sends a
    /// crafted SYN for the same 4-tuple — sequence `newer` or `older` than the old connection's, with a
    /// timestamp `none`, `newer` or `older` — and reports what the kernel answered.
    static func timeWaitSYN(port: UInt16, clientPort: UInt16, sequence: String, timestamp: String) -> Never {
        let sniffer = RawTCP.sniffer(), sender = RawTCP.sender()
        guard sniffer >= 0, sender >= 0 else { fail("raw sockets need CAP_NET_RAW (run as root)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var local = POSIX.address("127.0.0.1", clientPort)
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var remote = POSIX.address("127.0.0.1", port)
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { fail("connect from port \(clientPort): \(POSIX.errorName())") }
        _ = POSIX.readToEnd(fd)  // the server closes first: it will hold the TIME_WAIT
        close(fd)
        guard let clientFIN = RawTCP.next(sniffer, timeout: 2, where: {
            $0.sourcePort == clientPort && $0.destinationPort == port && $0.flags & TCPSegment.fin != 0
        }) else { fail("did not see the client's FIN") }
        usleep(100_000)
        let oldNext = clientFIN.sequence &+ 1  // the TIME_WAIT's rcv_nxt: the FIN takes one sequence number
        let synSequence = sequence == "newer" ? oldNext &+ 100_000 : oldNext &- 100_000
        let lastValue = clientFIN.timestamp?.value ?? 0
        let synTimestamp: (UInt32, UInt32)? =
            switch timestamp {
            case "newer": (lastValue &+ 1000, 0)
            case "older": (lastValue &- 1000, 0)
            default: nil
            }
        let syn = TCPSegment(sourcePort: clientPort, destinationPort: port, sequence: synSequence, flags: TCPSegment.syn, timestamp: synTimestamp)
        RawTCP.drain(sniffer)
        guard RawTCP.send(sender, syn) else { fail("cannot send the crafted SYN: \(POSIX.errorName())") }
        let answer = RawTCP.next(sniffer, timeout: 1.5) { $0.sourcePort == port && $0.destinationPort == clientPort }
        let oldHadTimestamps = clientFIN.timestamp != nil
        report("ready answer=\(answer?.flagNames ?? "none") oldTimestamps=\(oldHadTimestamps) "
            + "synSequenceDelta=\(sequence == "newer" ? 100_000 : -100_000) synTimestamp=\(timestamp)")
        exit(0)
    }

    // MARK: - Clients

    /// close-wait-leak: connect, read the server's greeting to EOF, and then either close (correct) or
    /// just reconnect (naive: the classic bug — the fd stays in CLOSE_WAIT forever).
    static func reconnectClient(port: UInt16, correct: Bool, connections: Int, fdLimit: Int, intervalMilliseconds: Int) -> Never {
        if fdLimit > 0 { POSIX.setFileLimit(fdLimit) }
        report("ready reconnect-client")
        var connected = 0, failed = 0, firstError = "none", failedAt = -1
        for attempt in 0..<connections {
            switch POSIX.connect(port: port) {
            case .success(let fd):
                connected += 1
                _ = POSIX.readToEnd(fd)  // the server writes its greeting and closes first
                if correct { close(fd) }  // the naive client forgets this line
            case .failure(let error):
                failed += 1
                if firstError == "none" { firstError = error.description; failedAt = attempt }
            }
            usleep(UInt32(intervalMilliseconds * 1000))
        }
        report("done connected=\(connected) failed=\(failed) firstError=\(firstError) failedAt=\(failedAt)")
        holdUntilTerminated()
    }

    /// Opens `count` connections, then: hold them, close them (orphans), or half-close them (shutdown).
    static func clients(port: UInt16, count: Int, then: String, send: String?) -> Never {
        var fds: [Int32] = []
        var failed = 0
        for _ in 0..<count {
            switch POSIX.connect(port: port) {
            case .success(let fd):
                if let send { POSIX.send(fd, send + "\n") }
                fds.append(fd)
            case .failure: failed += 1
            }
        }
        switch then {
        case "close": fds.forEach { close($0) }
        case "half-close": fds.forEach { shutdown($0, Int32(SHUT_WR)) }
        case "wait-eof":
            // Wait for the server to close first, then close: the server is the active closer.
            for fd in fds { _ = POSIX.readToEnd(fd); close(fd) }
        default: break
        }
        report("ready clients connected=\(fds.count) failed=\(failed)")
        holdUntilTerminated()
    }

    /// time-wait-churn: `rate` requests per second for `seconds`, one connection each (or one in all).
    /// Connections rotate over `ports` (destination ports) and `sources` (local addresses), as a client
    /// spreading its load would. Reports when the first connect() failed, and with which errno.
    static func churn(
        port: UInt16, rate: Double, seconds: Double, closer: String, persistent: Bool, host: String = "127.0.0.1",
        ports: [UInt16] = [], sources: [String] = []
    ) -> Never {
        report("ready churn")
        let start = monotonicSeconds()
        var done = 0, failed = 0, firstError = "none", firstFailureAt = -1.0
        var persistentFD: Int32 = -1
        let destinations = ports.isEmpty ? [port] : ports
        if persistent, case .success(let fd) = POSIX.connect(host: host, port: port) { persistentFD = fd }
        while monotonicSeconds() - start < seconds {
            let due = start + Double(done + failed) / rate
            let wait = due - monotonicSeconds()
            if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
            if persistent {
                POSIX.send(persistentFD, "request\n")
                if POSIX.readSome(persistentFD) > 0 { done += 1 } else { failed += 1 }
                continue
            }
            let attempt = done + failed
            let source = sources.isEmpty ? nil : sources[attempt % sources.count]
            switch POSIX.connect(host: host, port: destinations[attempt % destinations.count], source: source) {
            case .success(let fd):
                POSIX.send(fd, "request\n")
                if closer == "server" {
                    _ = POSIX.readToEnd(fd)  // the server replies and closes first
                } else {
                    _ = POSIX.readSome(fd)  // read the reply, then close first
                }
                close(fd)
                done += 1
            case .failure(let error):
                failed += 1
                if firstError == "none" {
                    firstError = error.description
                    firstFailureAt = monotonicSeconds() - start
                }
            }
        }
        if persistentFD >= 0 { close(persistentFD) }
        report("done requests=\(done) failed=\(failed) firstError=\(firstError) firstFailureAt=\(firstFailureAt) seconds=\(monotonicSeconds() - start)")
        holdUntilTerminated()
    }
}

/// The lab's servers, one poll loop:
/// - `close-first`: write a greeting and close at once (the server is the active closer);
/// - `close-on-eof`: answer each request line, close when the client closes (the correct server);
/// - `reply-close`: answer the first request and close (server closes first, per request);
/// - `hold`: accept and never read or close (a peer that never closes);
/// - `exception-leak`: like close-on-eof, but a request containing "bad" takes an error path that
///   returns without closing (the classic leak: the socket sits in CLOSE_WAIT once the client gives up).
struct Server {
    var port: UInt16
    var behavior: String
    var reuseAddress: Bool
    var host = "127.0.0.1"

    func run() -> Never {
        let listener: Int32
        switch POSIX.listen(port: port, reuseAddress: reuseAddress, host: host) {
        case .success(let fd): listener = fd
        case .failure(let error): LabPeer.fail("listen on \(port): \(error)")
        }
        report("ready server port=\(port) behavior=\(behavior)")
        var watched = Set<Int32>()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)] + watched.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 1000) > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                if entry.fd == listener {
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else { continue }
                    switch behavior {
                    case "close-first":
                        POSIX.send(client, "hello\n")
                        close(client)
                    case "hold": break  // never read, never close
                    default: watched.insert(client)
                    }
                    continue
                }
                let n = read(entry.fd, &buffer, buffer.count)
                if n <= 0 {
                    watched.remove(entry.fd)
                    close(entry.fd)  // EOF or error: close (every behavior that reads does this)
                    continue
                }
                let request = String(decoding: buffer[0..<n], as: UTF8.self)
                if behavior == "exception-leak" && request.contains("bad") {
                    watched.remove(entry.fd)  // the "exception": stop handling, forget to close
                    continue
                }
                POSIX.send(entry.fd, "reply\n")
                if behavior == "reply-close" {
                    watched.remove(entry.fd)
                    close(entry.fd)
                }
            }
        }
    }
}
