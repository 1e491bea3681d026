/// Why bytes received on a link are not a valid frame. The decoder throws these; the connection answers
/// with an ERROR frame and a graceful close, and never crashes or allocates on the length field's word.
public struct LinkProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// The length field exceeds the configured maximum (checked before any allocation).
        case frameTooLarge(length: UInt32, limit: UInt32)
        /// A frame shorter than its type needs.
        case truncated(kind: UInt8, length: UInt32)
        /// A type byte this version does not know.
        case unknownType(UInt8)
        /// A length of zero (no type byte).
        case emptyFrame
        /// Text that is not UTF-8, or an inner length that overruns the frame.
        case malformed(String)
        /// The connection ended in the middle of a frame.
        case leftoverBytes(Int)
    }

    public var reason: Reason

    public init(_ reason: Reason) { self.reason = reason }

    public var description: String {
        switch reason {
        case .frameTooLarge(let length, let limit): "frame of \(length) bytes exceeds the limit of \(limit)"
        case .truncated(let kind, let length): "frame type \(kind) is too short (\(length) bytes)"
        case .unknownType(let kind): "unknown frame type \(kind)"
        case .emptyFrame: "empty frame"
        case .malformed(let what): "malformed frame: \(what)"
        case .leftoverBytes(let count): "connection ended inside a frame (\(count) bytes left)"
        }
    }
}
