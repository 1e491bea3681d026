/// What a source wants said on stderr or counted: one value per event, so the CLI decides the words and
/// the library never prints.
public enum SourceEvent: Sendable, Equatable {
    /// A line longer than the limit was cut to it.
    case lineCut(path: String, line: UInt64, bytes: Int, limit: Int)
    /// A file met again continues a stream the server holds: `skipped` lines were already there.
    case resumed(path: String, stream: String, skipped: UInt64)
    /// New content: a stream the server did not hold.
    case started(path: String, stream: String)
    /// The followed path now names another file (renamed, or deleted and recreated); the old one was read
    /// to its end.
    case rotated(path: String)
    /// The followed file got shorter (copytruncate): what follows is new content.
    case truncated(path: String)
    /// A file begins like a stream the server holds but differs at its last line: shipped as new content.
    case notTheSameContent(path: String, stream: String)
    /// A rotated sibling that holds nothing the server lacks was passed over.
    case alreadyShipped(path: String)
}
