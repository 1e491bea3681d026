import Synchronization

/// The stream names in use by this sender's inputs, so two inputs never ship one content twice (a glob that
/// matches a file and its rotated copy), and the resumes a file failed (so it is not offered them again).
public final class StreamRegistry: Sendable {
    private struct State {
        var inUse: Set<String> = []
        var rejected: Set<String> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Takes `name` for one input; false when another input has it.
    func claim(_ name: String) -> Bool { state.withLock { $0.inUse.insert(name).inserted } }

    func release(_ name: String) { _ = state.withLock { $0.inUse.remove(name) } }

    func names(plus others: [String]) -> Set<String> { state.withLock { $0.inUse.union(others).union($0.rejected.map { String($0.split(separator: "@")[0]) }) } }

    func reject(_ name: String, for file: FileIdentity) { _ = state.withLock { $0.rejected.insert("\(name)@\(file.device):\(file.inode)") } }

    func rejected(_ name: String, for file: FileIdentity) -> Bool { state.withLock { $0.rejected.contains("\(name)@\(file.device):\(file.inode)") } }
}
