#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Reads a descriptor that cannot seek (a pipe, a terminal).
final class DescriptorReader: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    /// Up to `count` bytes (empty at the end of the input), or nil when nothing arrived within `wait`: a read
    /// that blocks on a thread cannot be cancelled, so the caller waits in slices and checks for
    /// cancellation (SIGINT, SIGTERM) between them.
    func read(upTo count: Int, waitMilliseconds wait: Int32 = 200) throws -> [UInt8]? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, wait)
        if polled == 0 || (polled < 0 && errno == EINTR) { return nil }
        return try readNow(upTo: count)
    }

    /// As ``read(upTo:waitMilliseconds:)``, then more while more is ready at once, up to `gathering` bytes,
    /// each read straight into the one buffer returned (gathering 4 MiB from 256 KiB arrays copied each twice).
    func read(upTo count: Int, gathering limit: Int) throws -> [UInt8]? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, 200)
        if polled == 0 || (polled < 0 && errno == EINTR) { return nil }
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: max(limit, count)) { buffer, filled in
            filled = 0
            while filled + count <= buffer.count {
                if filled > 0 {
                    ready.revents = 0
                    guard poll(&ready, 1, 0) > 0 else { break }
                }
                let n = Glibc.read(fd, buffer.baseAddress! + filled, count)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }
                filled += n
            }
        }
        if failure != 0 && bytes.isEmpty { throw SourceError("cannot read the input: \(String(cString: strerror(failure)))") }
        return bytes
    }

    private func readNow(upTo count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var n: Int
        repeat { n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } } while n < 0 && errno == EINTR
        if n < 0 { throw SourceError("cannot read the input: \(String(cString: strerror(errno)))") }
        return n == count ? buffer : Array(buffer[0..<n])
    }
}
