import LingerLink

/// The token file: text a person edits. Any text gives tokens or one ``LinkError``; every token parsed is
/// non-empty, has no white space, appears once, and permits exactly what its id patterns say.
enum TokenFileTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        let tokens: [LinkToken]
        do {
            tokens = try LinkToken.parseFile(text)
        } catch is LinkError {
            return
        } catch {
            violated("parseFile threw \(type(of: error)), not a LinkError")
        }
        var seen: Set<String> = []
        for token in tokens {
            guard !token.secret.isEmpty, !token.secret.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }),
                  !token.secret.hasPrefix("#")
            else { violated("token '\(token.secret)' has white space, is empty or is a comment") }
            guard seen.insert(token.secret).inserted else { violated("token '\(token.secret)' parsed twice") }
            for pattern in token.clientIDs where !pattern.hasSuffix("*") {
                guard token.permits(pattern) else { violated("token does not permit its own id \(pattern)") }
            }
            if !token.clientIDs.isEmpty, !token.clientIDs.contains("*"), token.permits("") {
                violated("a token with ids permits the empty client id")
            }
        }
    }
}
