#if os(Linux)
@preconcurrency import Glibc
#endif

/// Entering a named network namespace (`ip netns add NAME` makes `/run/netns/NAME`), as `ss -N NAME` does.
public enum NetworkNamespace {
    /// Where `ip netns` keeps its namespace handles.
    public static let directory = "/run/netns"

    /// Moves the calling thread into namespace `name`. Every socket opened and every `/proc/thread-self/net`
    /// file read afterwards on this thread sees that namespace; call it before anything else.
    /// - Throws: ``ProbeError`` `.namespaceNotFound` listing the namespaces that do exist, or
    ///   `.permissionDenied` when not root (entering needs CAP_SYS_ADMIN).
    public static func enter(_ name: String) throws {
        #if os(Linux)
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw ProbeError(.namespaceNotFound, "'\(name)' is not a namespace name; \(availableText())")
        }
        let fd: Int32
        switch system_open("\(directory)/\(name)", O_RDONLY) {
        case .success(let value): fd = value
        case .failure(let error) where error.code == ENOENT:
            throw ProbeError(.namespaceNotFound, "network namespace '\(name)' does not exist; \(availableText())", errno: error.code)
        case .failure(let error):
            throw ProbeError(.permissionDenied, "cannot open network namespace '\(name)': \(error.text)", errno: error.code)
        }
        defer { system_close(fd) }
        if case .failure(let error) = system_setns_net(fd) {
            let hint = error.code == EPERM ? " (entering a namespace needs root or CAP_SYS_ADMIN)" : ""
            throw ProbeError(.permissionDenied, "cannot enter network namespace '\(name)': \(error.text)\(hint)", errno: error.code)
        }
        #else
        throw ProbeError(.unsupportedPlatform, "network namespaces exist on Linux only")
        #endif
    }

    /// The names in `/run/netns`, sorted.
    public static func available() -> [String] {
        #if os(Linux)
        guard case .success(let dir) = system_opendir(directory) else { return [] }
        defer { system_closedir(dir) }
        var names: [String] = []
        while let entry = system_readdir(dir) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
        #else
        return []
        #endif
    }

    private static func availableText() -> String {
        let names = available()
        return names.isEmpty ? "no namespaces exist (see `ip netns list`)" : "existing: \(names.joined(separator: ", "))"
    }
}
