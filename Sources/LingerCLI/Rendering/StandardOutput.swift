#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("Unsupported platform")
#endif

/// Writes whole buffers to stdout/stderr with write(2): one syscall per buffer, no per-line locking.
enum StandardOutput {
    static func write(_ bytes: [UInt8], to fd: Int32 = 1) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // EPIPE and friends: the reader went away; nothing useful to do.
                }
                offset += n
            }
        }
    }

    static func print(_ text: String) { write(Array((text + "\n").utf8)) }

    /// A note for humans that must not pollute stdout (which scripts parse).
    static func note(_ text: String) { write(Array(("linger: " + text + "\n").utf8), to: 2) }

    static var isTerminal: Bool { isatty(1) != 0 }
}

/// Sleeps without Foundation; used between the two snapshots of `--confirm`.
func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
