#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Makes one process the only writer of an output (the file sink's file, a sender's spool) while it holds
/// the lock: `flock(2)` on a lock file beside it.
///
/// Two writers of one output each believe they know where it ends: two servers on one file overwrote each
/// other's lines (10 lines sent, 5 in the file), and a second sender on a spool would cut the first's
/// append in progress as a torn tail. The kernel drops the lock when its holder ends, however it ends, so a
/// crash never leaves it held. The file itself stays: removing it would let a third process lock a new
/// file while the second still holds the old one.
package final class WriterLock: Sendable {
    package enum Failure: Error, Equatable {
        /// Another process (or another open of the same output in this one) holds it; the pid it recorded.
        case held(byPID: Int32?)
        /// The lock file cannot be created or locked: the errno.
        case cannotLock(Int32)
    }

    package let path: String
    private let descriptor: Mutex<Int32>

    /// Takes the lock at once or fails: waiting would leave a second writer hanging with no word why.
    package init(path: String) throws(Failure) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotLock(errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.recordedPID(fd)
            _ = close(fd)
            throw code == EWOULDBLOCK ? .held(byPID: holder) : .cannotLock(code)
        }
        // The holder's pid, for the message a second writer gets; only ever read for that.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.path = path
        descriptor = Mutex(fd)
    }

    /// Lets the next writer in. Idempotent.
    package func release() {
        descriptor.withLock { fd in
            if fd >= 0 { _ = close(fd) }
            fd = -1
        }
    }

    deinit { release() }

    /// "(pid N)" for a message, or nothing when the holder's pid is unknown.
    package static func describe(_ holder: Int32?) -> String {
        holder.map { " (pid \($0))" } ?? ""
    }

    private static func recordedPID(_ fd: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return String(decoding: bytes[0..<n], as: UTF8.self).split(separator: "\n").first.flatMap { Int32($0) }
    }
}
