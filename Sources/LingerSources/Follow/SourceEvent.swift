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
    /// A copy that holds nothing the server lacks (a `.gz` of a shipped file, a copy of what was shipped) was
    /// passed over.
    case alreadyShipped(path: String)
    /// A rotated copy from before this sender ever shipped the log was left alone.
    case history(path: String)
    /// The spool reached `--spool-max-bytes`: reading stdin waits for acknowledgements to make room.
    case spoolFull(directory: String, bytes: Int64, limit: Int64)
    /// A gzip file that ends inside its stream (being compressed now, or cut off) was left for later.
    case unfinishedCompressedFile(path: String)
}
