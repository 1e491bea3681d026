import CLingerZlib
@testable import LingerLink
import Testing

struct ContentDigestTests {
    /// Extending message by message, by whole runs of lines, or from a mark all give the CRC-32C and length
    /// of the concatenation: what lets the server keep one value and a sender recompute it from its input.
    @Test(arguments: [[""], ["a"], ["one", "", "three"], Array(repeating: "x", count: 300), ["ünïcödé", String(repeating: "y", count: 5000)]])
    func extendingInPiecesEqualsTheWhole(_ messages: [String]) {
        let whole = Array(messages.map { $0 + "\n" }.joined().utf8)
        let expected = UInt64(UInt32(truncatingIfNeeded: whole.count)) << 32 | UInt64(whole.withUnsafeBytes { linger_crc32c_portable(0, $0.baseAddress, $0.count) })
        var byMessage = LinkContentDigest.empty
        for message in messages { byMessage = Array(message.utf8).withUnsafeBytes { LinkContentDigest.extend(byMessage, withMessage: $0) } }
        #expect(byMessage == expected)
        let half = messages.count / 2
        let front = Array(messages[..<half].map { $0 + "\n" }.joined().utf8), back = Array(messages[half...].map { $0 + "\n" }.joined().utf8)
        let inRuns = back.withUnsafeBytes { b in front.withUnsafeBytes { f in LinkContentDigest.extend(LinkContentDigest.extend(0, withLines: f), withLines: b) } }
        #expect(inRuns == expected)
        #expect(LinkContentDigest.length(of: expected) == UInt32(whole.count))
    }

    @Test func anUnknownDigestStaysUnknownExceptFromTheStart() {
        let bytes = Array("m\n".utf8)
        #expect(bytes.withUnsafeBytes { LinkContentDigest.continuing(0, at: 4, withLines: $0) } == 0)
        #expect(bytes.withUnsafeBytes { LinkContentDigest.continuing(0, at: 0, withLines: $0) } != 0)
    }
}
