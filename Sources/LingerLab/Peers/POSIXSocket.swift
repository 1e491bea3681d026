@preconcurrency import Glibc
import CLingerLinux

// Plain POSIX socket calls for the lab's peers: the naive variants must be exactly the classic C bugs,
// so nothing here closes anything on its own.

enum POSIX {
    static func address(_ host: String, _ port: UInt16) -> sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sin.sin_addr)
        return sin
    }

    static func errorName(_ code: Int32 = errno) -> String {
        switch code {
        case EADDRINUSE: "EADDRINUSE"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case EMFILE: "EMFILE"
        case ECONNREFUSED: "ECONNREFUSED"
        case ECONNRESET: "ECONNRESET"
        case ETIMEDOUT: "ETIMEDOUT"
        case EPIPE: "EPIPE"
        default: "errno\(code)"
        }
    }

    /// A listening socket, or the errno name of what failed.
    static func listen(port: UInt16, reuseAddress: Bool, backlog: Int32 = 4096, host: String = "127.0.0.1") -> Result<Int32, LabError> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        if reuseAddress { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var sin = address(host, port)
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 {
            let name = errorName()
            close(fd)
            return .failure(LabError(name))
        }
        Glibc.listen(fd, backlog)
        return .success(fd)
    }

    /// A connected socket, or the errno name of what failed. With `source`, the socket is bound to that
    /// local address first — with IP_BIND_ADDRESS_NO_PORT, so the port is still chosen per destination at
    /// connect() (a plain bind would reserve a port for every destination; FACTS §2.8).
    static func connect(host: String = "127.0.0.1", port: UInt16, source: String? = nil) -> Result<Int32, LabError> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if fd < 0 { return .failure(LabError(errorName())) }
        if let source {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = address(source, 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound != 0 {
                let name = errorName()
                close(fd)
                return .failure(LabError(name))
            }
        }
        var sin = address(host, port)
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            let name = errorName()
            close(fd)
            return .failure(LabError(name))
        }
        return .success(fd)
    }

    /// Sends all of `text`; false when the connection failed (reset, broken pipe) on the way.
    @discardableResult
    static func send(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads until EOF or error; returns the bytes and whether EOF (not an error) ended it.
    static func readToEnd(_ fd: Int32) -> ([UInt8], Bool) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { data += buffer[0..<n]; continue }
            return (data, n == 0)
        }
    }

    static func readSome(_ fd: Int32) -> Int {
        var buffer = [UInt8](repeating: 0, count: 4096)
        return read(fd, &buffer, buffer.count)
    }

    static func setFileLimit(_ limit: Int) {
        var value = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
        var current = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &current)
        value.rlim_max = current.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &value)
    }

    static func abortiveClose(_ fd: Int32) {
        clinger_set_linger(fd, 1, 0)
        close(fd)
    }
}

func report(_ line: String) {
    print(line)
    fflush(stdout)
}

/// Waits for SIGTERM (the lab's "stop"), holding whatever sockets the caller still has.
func holdUntilTerminated() -> Never {
    while true { pause() }
}
