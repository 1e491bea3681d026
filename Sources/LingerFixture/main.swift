// linger-fixture: real peers that put TCP sockets into a chosen state and hold them there.
//
// Integration tests and benchmarks start it inside a network namespace, wait for the line "ready ..." on
// stdout, inspect the namespace, then close its stdin; it then closes every socket and exits. It uses
// plain POSIX sockets so that what it does is exactly what a naive or careful C program would do.
//
//   linger-fixture server  --port P [--address A] [--backlog B] [--no-accept] [--on-eof hold|close]
//   linger-fixture clients --port P [--address A] --count N [--then hold|close|half-close|reset] [--nonblocking]
//                          [--link-hello PREFIX]   (each connection says HELLO as link client PREFIX-i)
//
// server:  listens; accepts unless --no-accept; on a peer's FIN it closes (close: the correct server), or
//          never reads at all (hold: the socket sits in CLOSE_WAIT with the FIN unread), or reads the EOF and
//          forgets to close (ignore: the classic bug; CLOSE_WAIT with nothing left to read).
// clients: makes N connections, then holds them (ESTABLISHED), closes them first (TIME_WAIT here, or
//          CLOSE_WAIT at a holding server), half-closes them (FIN_WAIT2 held by this process), or resets them.
//
//   linger-fixture relay --port P [--address A] --to PORT --record FILE
//
// relay:   a TCP relay to PORT on the same address that appends every byte it forwards, both ways, to FILE:
//          what a wiretap on the path sees. A FIN is passed on as a FIN (half-close kept), and each pair is
//          closed once both sides finished.
//
//   linger-fixture others
//
// others:  holds sockets of every family but TCP (UDP bound, a UNIX listener and a UNIX socketpair, a
//          netlink route socket, a packet socket): what a doctor must never mistake for TCP.
//
//   linger-fixture writer --port P [--address A]
//
// writer:  connects and writes a line every 100 ms until stdin closes (a client whose peer may vanish).
//
//   linger-fixture probe --port P [--address A] --send HEX [--wait SECONDS]
//
// probe:   connects, writes the bytes, then reads until the peer closes (or the wait ends) and prints
//          "received=HEX end=eof|reset|timeout": how a server answers a bad client, seen from the wire.
@preconcurrency import Glibc
import CLingerLinux

/// `--help`: the modes, as the header comment of this file describes them.
let usageText = """
    linger-fixture: test peers that put TCP sockets into a chosen state and hold them until stdin closes.
    Start it inside a network namespace, wait for its "ready ..." line, look, then close its stdin.

      linger-fixture server  --port P [--address A] [--backlog B] [--no-accept] [--on-eof close|hold|ignore]
      linger-fixture clients --port P [--address A] --count N [--then hold|close|half-close|reset] [--nonblocking]
                             [--link-hello PREFIX]
      linger-fixture probe   --port P [--address A] --send HEX [--wait SECONDS]
      linger-fixture relay   --port P [--address A] --to PORT --record FILE
      linger-fixture others  (UDP, UNIX, netlink and packet sockets: everything but TCP)
      linger-fixture writer  --port P [--address A]   (writes a line every 100 ms)

    server --on-eof hold never reads (CLOSE_WAIT with the FIN unread); ignore reads the EOF and forgets to close.
    """

struct Options {
    var mode = ""
    var address = "127.0.0.1"
    var port: UInt16 = 0
    var count = 1
    var backlog: Int32 = 4096
    var accept = true
    var onEOF = "close"
    var then = "hold"
    var nonblocking = false
    var send: [UInt8] = []
    var linkHello: String?
    var wait = 5.0
    var to: UInt16 = 0
    var record = ""
}

func fail(_ message: String) -> Never {
    fputs("linger-fixture: \(message)\n", stderr)
    exit(2)
}

func number<T: FixedWidthInteger>(_ text: String, _ option: String) -> T {
    guard let value = T(text) else { fail("bad \(option) \(text)") }
    return value
}

func parse(_ arguments: [String]) -> Options {
    var options = Options()
    guard arguments.count >= 2 else { fail("usage: linger-fixture server|clients|probe|relay|others|writer --port P ... (--help)") }
    if arguments[1] == "--help" || arguments[1] == "-h" {
        print(usageText)
        exit(0)
    }
    options.mode = arguments[1]
    var i = 2
    func value() -> String {
        i += 1
        guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value") }
        return arguments[i]
    }
    while i < arguments.count {
        switch arguments[i] {
        case "--port": options.port = number(value(), "--port")
        case "--address": options.address = value()
        case "--count": options.count = number(value(), "--count")
        case "--backlog": options.backlog = number(value(), "--backlog")
        case "--no-accept": options.accept = false
        case "--on-eof": options.onEOF = value()
        case "--then": options.then = value()
        case "--nonblocking": options.nonblocking = true
        case "--send": options.send = hexBytes(value())
        case "--link-hello": options.linkHello = value()
        case "--to": options.to = number(value(), "--to")
        case "--record": options.record = value()
        case "--wait":
            guard let wait = Double(value()) else { fail("bad --wait") }
            options.wait = wait
        default: fail("unknown argument \(arguments[i])")
        }
        i += 1
    }
    return options
}

func socketAddress(_ address: String, _ port: UInt16) -> sockaddr_in {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { fail("bad IPv4 address \(address)") }
    return sin
}

func raiseFileLimit() {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

func say(_ line: String) {
    print(line)
    fflush(stdout)
}

/// Blocks until stdin reaches EOF (the test is done with us) while serving `extra` fds via `onReadable`.
func waitForStdinEOF(watching extra: () -> [Int32], onReadable: (Int32) -> Void) {
    var buffer = [UInt8](repeating: 0, count: 512)
    while true {
        var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
        fds += extra().map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ready = poll(&fds, nfds_t(fds.count), 1000)
        if ready < 0 && errno != EINTR { fail("poll: \(String(cString: strerror(errno)))") }
        if ready <= 0 { continue }
        if fds[0].revents != 0 {
            if read(0, &buffer, buffer.count) <= 0 { return }
        }
        for entry in fds.dropFirst() where entry.revents != 0 { onReadable(entry.fd) }
    }
}

func listener(_ options: Options) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { fail("socket: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = socketAddress(options.address, options.port)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { fail("bind \(options.address):\(options.port): \(String(cString: strerror(errno)))") }
    guard listen(fd, options.backlog) == 0 else { fail("listen: \(String(cString: strerror(errno)))") }
    return fd
}

func runServer(_ options: Options) {
    let listener = listener(options)
    // Non-blocking, so one wake-up accepts everything queued (tens of thousands of sockets in benchmarks).
    _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
    say("ready server pid=\(getpid()) port=\(options.port)")

    var accepted = Set<Int32>()
    var leaked: [Int32] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    waitForStdinEOF(
        watching: { (options.accept ? [listener] : []) + (options.onEOF == "hold" ? [] : Array(accepted)) },
        onReadable: { fd in
            if fd == listener {
                while true {
                    let client = accept(listener, nil, nil)  // accepted sockets do not inherit O_NONBLOCK on Linux
                    if client < 0 { break }
                    accepted.insert(client)
                }
                return
            }
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 {  // EOF or error: the correct server closes at once; the buggy one only stops watching.
                if options.onEOF == "close" { close(fd) } else { leaked.append(fd) }
                accepted.remove(fd)
            }
        })
    for fd in accepted { close(fd) }
    for fd in leaked { close(fd) }
    close(listener)
}

func runRelay(_ options: Options) {
    guard options.to > 0, !options.record.isEmpty else { fail("relay needs --to PORT and --record FILE") }
    let record = open(options.record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard record >= 0 else { fail("cannot open \(options.record): \(String(cString: strerror(errno)))") }
    let server = listener(options)
    say("ready relay pid=\(getpid()) port=\(options.port) to=\(options.to)")
    var peer: [Int32: Int32] = [:]
    var finished: Set<Int32> = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    func writeAll(_ fd: Int32, _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
    func closePair(_ fd: Int32) {
        guard let other = peer[fd] else { return }
        close(fd)
        close(other)
        peer[fd] = nil
        peer[other] = nil
        finished.remove(fd)
        finished.remove(other)
    }
    waitForStdinEOF(
        watching: { [server] + peer.keys.filter { !finished.contains($0) } },
        onReadable: { fd in
            if fd == server {
                let client = accept(server, nil, nil)
                guard client >= 0 else { return }
                let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var target = socketAddress(options.address, options.to)
                let connected = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    close(upstream)
                    close(client)
                    return
                }
                peer[client] = upstream
                peer[upstream] = client
                return
            }
            guard let other = peer[fd] else { return }
            let n = read(fd, &buffer, buffer.count)
            if n > 0 {
                guard writeAll(record, n), writeAll(other, n) else { return closePair(fd) }
                return
            }
            if n < 0 && errno == EINTR { return }
            if n < 0 { return closePair(fd) }
            // EOF: pass the FIN on; once both directions ended, the pair is done.
            shutdown(other, Int32(SHUT_WR))
            finished.insert(fd)
            if finished.contains(other) { closePair(fd) }
        })
    for fd in peer.keys { close(fd) }
    close(server)
    close(record)
}

func runOthers() {
    var held: [Int32] = []
    let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var any = socketAddress("127.0.0.1", 0)
    _ = withUnsafePointer(to: &any) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    held.append(udp)
    let unix = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var path = sockaddr_un()
    path.sun_family = sa_family_t(AF_UNIX)
    // An abstract name: nothing to clean up on disk.
    let name = Array("\0linger-fixture-\(getpid())".utf8)
    withUnsafeMutableBytes(of: &path.sun_path) { raw in for (i, byte) in name.enumerated() where i < raw.count { raw[i] = byte } }
    let bound = withUnsafePointer(to: &path) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(unix, $0, socklen_t(MemoryLayout<sa_family_t>.size + name.count)) }
    }
    guard bound == 0, listen(unix, 16) == 0 else { fail("unix listener: \(String(cString: strerror(errno)))") }
    held.append(unix)
    // Enough of each that a doctor counting them as TCP would cross its threshold (10).
    for _ in 0..<6 {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { fail("socketpair: \(String(cString: strerror(errno)))") }
        held += pair
        held.append(socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0))
        held.append(socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0))  // NETLINK_ROUTE
        held.append(socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), 0))
    }
    guard held.allSatisfy({ $0 >= 0 }) else { fail("socket: \(String(cString: strerror(errno)))") }
    say("ready others pid=\(getpid()) sockets=\(held.count)")
    waitForStdinEOF(watching: { [] }, onReadable: { _ in })
    for fd in held { close(fd) }
}

func runWriter(_ options: Options) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = socketAddress(options.address, options.port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { fail("connect \(options.address):\(options.port): \(String(cString: strerror(errno)))") }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)  // a full send buffer must not block the loop
    say("ready writer pid=\(getpid()) fd=\(fd)")
    var line = Array("a line that waits for an acknowledgement\n".utf8)
    var buffer = [UInt8](repeating: 0, count: 64)
    while true {
        var stdinPoll = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        if poll(&stdinPoll, 1, 100) > 0, read(0, &buffer, buffer.count) <= 0 { break }
        _ = write(fd, &line, line.count)
    }
    close(fd)
}

func runClients(_ options: Options) {
    var address = socketAddress(options.address, options.port)
    var sockets: [Int32] = []
    var failures = 0
    var lastError = ""
    for _ in 0..<options.count {
        let type = Int32(SOCK_STREAM.rawValue) | (options.nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { failures += 1; lastError = String(cString: strerror(errno)); continue }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 && !(options.nonblocking && errno == EINPROGRESS) {
            failures += 1
            lastError = String(cString: strerror(errno))
            close(fd)
            continue
        }
        if let prefix = options.linkHello {
            // A link HELLO (protocol version 2) with client id PREFIX-i, an empty token and no idle timeout,
            // so each connection is a distinct idle link session.
            let id = Array("\(prefix)-\(sockets.count)".utf8)
            var frame: [UInt8] = []
            let length = UInt32(1 + 2 + 2 + id.count + 2 + 4)
            frame += withUnsafeBytes(of: length.bigEndian, Array.init)
            frame += [1, 0, 2]
            frame += withUnsafeBytes(of: UInt16(id.count).bigEndian, Array.init)
            frame += id + [0, 0] + [0, 0, 0, 0]
            _ = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
        sockets.append(fd)
    }
    switch options.then {
    case "hold": break
    case "close":
        for fd in sockets { close(fd) }
        sockets.removeAll()
    case "half-close":
        for fd in sockets { shutdown(fd, Int32(SHUT_WR)) }
    case "reset":
        for fd in sockets { clinger_set_linger(fd, 1, 0); close(fd) }
        sockets.removeAll()
    default: fail("unknown --then \(options.then)")
    }
    say("ready clients pid=\(getpid()) connected=\(options.count - failures) failed=\(failures)"
        + (failures > 0 ? " error=\(lastError.replacingSpaces())" : ""))
    waitForStdinEOF(watching: { [] }, onReadable: { _ in })
    for fd in sockets { close(fd) }
}

func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { fail("--send needs an even number of hex digits") }
    return stride(from: 0, to: digits.count, by: 2).map { i in
        guard let byte = UInt8(String(decoding: digits[i...i + 1], as: UTF8.self), radix: 16) else { fail("bad hex in --send") }
        return byte
    }
}

func runProbe(_ options: Options) {
    var address = socketAddress(options.address, options.port)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { fail("connect: \(String(cString: strerror(errno)))") }
    _ = options.send.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var end = "timeout"
    let deadline = Double(time(nil)) + options.wait
    while Double(time(nil)) <= deadline {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 100) > 0 else { continue }
        let n = read(fd, &buffer, buffer.count)
        if n > 0 { received += buffer[0..<n]; continue }
        end = n == 0 ? "eof" : (errno == ECONNRESET ? "reset" : "error")
        break
    }
    close(fd)
    let hex = received.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    say("ready probe received=\(hex) end=\(end)")
    waitForStdinEOF(watching: { [] }, onReadable: { _ in })
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

signal(SIGPIPE, SIG_IGN)
raiseFileLimit()
let options = parse(CommandLine.arguments)
switch options.mode {
case "server": runServer(options)
case "clients": runClients(options)
case "probe": runProbe(options)
case "relay": runRelay(options)
case "others": runOthers()
case "writer": runWriter(options)
default: fail("unknown mode \(options.mode); use server, clients, probe, relay, others or writer")
}
