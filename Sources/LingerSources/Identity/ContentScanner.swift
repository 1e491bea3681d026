import LingerLink

/// Reads a file from its start as a sender would frame it, to judge it against candidate streams (see
/// ``StreamCatalog``). Blocking: on ``SourceIO``'s threads.
enum ContentScanner {
    /// Scans `file` up to the largest of `stops` (or its end), with lines cut as `maximumLineBytes` cuts them.
    /// - Parameters:
    ///   - settled: the file counts as quiet when it was last modified before this (nanoseconds since the
    ///     epoch); a last line without its newline then counts as a line, as a one-shot sender ships it.
    /// - Throws: ``InputFile/Incomplete`` for a gzip file still being written.
    static func scan(_ file: InputFile, stops: [UInt64], maximumLineBytes: Int, settled: Int64, scratch: UnsafeMutableRawBufferPointer) throws -> ContentScan {
        let quiet = (file.status()?.modified ?? 0) <= settled || file.isCompressed
        file.rewind()
        return try scan(stops: stops, maximumLineBytes: maximumLineBytes, quiet: quiet) { body in
            try file.read(upTo: scratch.count, into: scratch, body)
        }
    }

    /// The scan itself, over what `read` hands its body until it returns 0 (the end of the content).
    static func scan(stops: [UInt64], maximumLineBytes: Int, quiet: Bool, read: ((UnsafeRawBufferPointer) -> Void) throws -> Int) rethrows -> ContentScan {
        var framer = LineFramer(maximumLineBytes: maximumLineBytes)
        framer.stop(at: stops)
        framer.resume(after: .max, check: 0)
        let last = stops.max() ?? 0
        var batch = LinkBatch(capacity: 0)  // a scan only counts: every line is skipped
        var complete = false
        // Past the last count, to the next line or the end: whether anything follows decides a copy from a
        // file that goes on.
        while framer.lines <= last || stops.isEmpty {
            let n = try read { _ = framer.frame($0, into: &batch) }
            if n == 0 {
                complete = true
                break
            }
        }
        if complete && quiet && framer.hasPartialLine {
            // A line the file ends with, as the one-shot sender that shipped it saw it (see ``LineFramer/finish(into:)``).
            var ended = framer
            ended.finish(into: &batch)
            framer = ended
        }
        return ContentScan(lines: framer.lines, reached: framer.reached, quiet: quiet, complete: complete)
    }
}
