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
        /// The server's sink failed in a way a retry cannot fix (its reader closed standard output).
        case sink
        /// Another sender with the same client id took over; this one must stop, not fight back.
        case replaced
        /// TLS failed in a way a retry cannot fix: an untrusted or expired certificate, a name that does not
        /// match, a peer that does not speak TLS.
        case tls
        /// What answered at the address does not speak the link (its first bytes are no link frame): another
        /// service on that port. Reconnecting cannot help.
        case notALinkServer
        /// No session could be established within the configured time (``LinkClientConfiguration/giveUpAfter``).
        case unreachable
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

/// An errno as words, lower-cased to sit inside a sentence ("connection refused").
func describeErrno(_ code: Int32) -> String {
    #if canImport(Glibc)
    let text = String(cString: strerror(code))
    return text.prefix(1).lowercased() + text.dropFirst()
    #else
    return "errno \(code)"
    #endif
}

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
