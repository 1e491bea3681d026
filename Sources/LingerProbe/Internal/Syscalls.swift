#if os(Linux)
@preconcurrency import Glibc
import CLingerLinux

// Every system call the probe makes goes through this file, so the platform surface is one screen long.
// Each returns the result or the errno; EINTR is retried here and nowhere else.

struct Errno: Error, Equatable {
    var code: Int32
    var text: String { String(cString: strerror(code)) }
}

@inline(__always)
private func retrying<T: BinaryInteger>(_ call: () -> T) -> Result<T, Errno> {
    while true {
        let value = call()
        if value >= 0 { return .success(value) }
        if errno != EINTR { return .failure(Errno(code: errno)) }
    }
}

func system_open(_ path: String, _ flags: Int32) -> Result<Int32, Errno> {
    retrying { open(path, flags | O_CLOEXEC) }
}

func system_close(_ fd: Int32) {
    _ = close(fd)  // close(2) must not be retried on EINTR on Linux: the fd is gone either way.
}

func system_read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Errno> {
    retrying { read(fd, buffer, count) }
}

func system_readlinkat(_ directory: Int32, _ name: UnsafePointer<CChar>, _ buffer: UnsafeMutablePointer<CChar>, _ size: Int) -> Result<Int, Errno> {
    retrying { readlinkat(directory, name, buffer, size) }
}

func system_getxattr(_ path: String, _ name: String, _ buffer: UnsafeMutableRawPointer, _ size: Int) -> Result<Int, Errno> {
    retrying { clinger_getxattr(path, name, buffer, size) }
}

func system_readlink(_ path: String, _ buffer: UnsafeMutablePointer<CChar>, _ size: Int) -> Result<Int, Errno> {
    retrying { readlink(path, buffer, size) }
}

func system_netlink_socket() -> Result<Int32, Errno> {
    retrying { socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), CLINGER_NETLINK_SOCK_DIAG) }
}

func system_netlink_bind(_ fd: Int32) -> Result<Int32, Errno> {
    retrying { clinger_netlink_bind(fd) }
}

func system_netlink_send(_ fd: Int32, _ bytes: [UInt8]) -> Result<Int, Errno> {
    retrying { bytes.withUnsafeBytes { clinger_netlink_send(fd, $0.baseAddress, $0.count) } }
}

func system_recv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Errno> {
    retrying { recv(fd, buffer, count, 0) }
}

func system_setns_net(_ fd: Int32) -> Result<Int32, Errno> {
    retrying { clinger_setns_net(fd) }
}

/// Opens a directory stream; the caller closes it with `system_closedir`.
func system_opendir(_ path: String) -> Result<OpaquePointer, Errno> {
    guard let dir = opendir(path) else { return .failure(Errno(code: errno)) }
    return .success(dir)
}

func system_closedir(_ dir: OpaquePointer) { _ = closedir(dir) }

/// The next directory entry's name bytes (without copying into a String), or `nil` at the end.
func system_readdir(_ dir: OpaquePointer) -> UnsafeMutablePointer<dirent>? { readdir(dir) }

func system_dirfd(_ dir: OpaquePointer) -> Int32 { dirfd(dir) }

func system_clock_realtime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
#endif
