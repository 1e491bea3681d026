/// Why the link failed, in words a user can act on.
public struct LinkError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The server refused the client (wrong token, unsupported version). Reconnecting cannot help.
        case rejected(LinkCloseCode)
        /// The outbox is full and the configuration says to fail rather than wait.
        case outboxFull
        /// The client was closed; nothing more can be sent.
        case closed
        /// A file could not be read or written.
        case io
        /// A configuration value is unusable.
        case configuration
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    static func io(_ what: String, errno code: Int32) -> LinkError {
        #if canImport(Glibc)
        LinkError(.io, code == 0 ? what : "\(what): \(String(cString: strerror(code)))")
        #else
        LinkError(.io, what)
        #endif
    }

    public var description: String { message }
}

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
