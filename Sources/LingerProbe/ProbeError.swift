/// Why the probe could not read the socket table, with a message that tells the user what to do.
///
/// `Code` is a struct over a private enum (as swift-nio's `FileSystemError` does) so new codes can be added
/// without breaking anyone who switches over the existing ones.
public struct ProbeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case namespaceNotFound, permissionDenied, netlinkUnavailable, malformedReply, readFailed, unsupportedPlatform
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// `--netns NAME` names no namespace in `/run/netns`.
        public static let namespaceNotFound = Code(.namespaceNotFound)
        /// The kernel refused an operation that needs privileges (entering a namespace, reading another user's fds).
        public static let permissionDenied = Code(.permissionDenied)
        /// NETLINK_SOCK_DIAG cannot be opened or answered with an error.
        public static let netlinkUnavailable = Code(.netlinkUnavailable)
        /// A netlink reply or a `/proc` file did not have the expected shape.
        public static let malformedReply = Code(.malformedReply)
        /// A `/proc` file could not be read.
        public static let readFailed = Code(.readFailed)
        /// The live probe runs on Linux only; the parsers work everywhere.
        public static let unsupportedPlatform = Code(.unsupportedPlatform)

        public var description: String { "\(value)" }
    }

    public var code: Code
    public var message: String
    /// The errno behind the failure, when there is one.
    public var errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}
