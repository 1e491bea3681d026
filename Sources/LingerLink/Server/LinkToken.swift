/// A token the server accepts, and the client ids its holder may write as: so one leaked token lets its holder
/// write as the clients it was issued for, not as everyone.
///
/// The token file (`linger serve --token-file`) holds one token per line, optionally followed by the client
/// ids it may use, separated by spaces; `*` at the end of an id matches any rest. Blank lines and lines
/// starting with `#` are ignored, and a token has no spaces:
/// ```
/// # token                              client ids
/// 3f1c9a0e6b2d4f8a9c7e5b1d3a6f8c2e     web-1 web-2
/// 8b7e6d5c4b3a29180f1e2d3c4b5a6978     batch-*
/// c0ffee00c0ffee00c0ffee00c0ffee00                       (no ids: any client id)
/// ```
/// `linger send --token-file` presents the first token of its file and ignores the ids.
public struct LinkToken: Sendable, Equatable {
    public var secret: String
    /// Exact ids, or prefixes ending in `*`; empty means any client id.
    public var clientIDs: [String]

    public init(secret: String, clientIDs: [String] = []) {
        self.secret = secret
        self.clientIDs = clientIDs
    }

    public func permits(_ clientID: String) -> Bool {
        clientIDs.isEmpty || clientIDs.contains { pattern in
            pattern.hasSuffix("*") ? clientID.hasPrefix(pattern.dropLast()) : pattern == clientID
        }
    }

    /// Parses a token file's text; throws naming the line of the first mistake.
    public static func parseFile(_ text: String, name: String = "the token file") throws -> [LinkToken] {
        var tokens: [LinkToken] = []
        var seen: Set<String> = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let secret = fields.first, !secret.hasPrefix("#") else { continue }
            let ids = Array(fields.dropFirst())
            for id in ids {
                let bare = id.hasSuffix("*") ? String(id.dropLast()) : id
                guard bare.isEmpty ? id == "*" : LinkClientID.isValid(bare) else {
                    throw LinkError(.configuration, "\(name) line \(index + 1): '\(id)' is not a client id (1-128 of A-Z a-z 0-9 . _ : -, optionally ending in *)")
                }
            }
            guard seen.insert(secret).inserted else {
                throw LinkError(.configuration, "\(name) line \(index + 1): this token is already on an earlier line; list all its client ids on one line")
            }
            tokens.append(LinkToken(secret: secret, clientIDs: ids))
        }
        return tokens
    }
}
