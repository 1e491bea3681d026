import LingerCore
import Testing

struct JSONAndTimeTests {
    @Test func escapesStringsAndKeepsKeyOrder() {
        let value: JSONValue = .object([
            ("b", .string("quote \" backslash \\ newline \n tab \t bell \u{07}")), ("a", .int(-3)), ("c", .null),
            ("d", .array([.bool(true), .double(0.5)])),
        ])
        #expect(value.text() == #"{"b":"quote \" backslash \\ newline \n tab \t bell \u0007","a":-3,"c":null,"d":[true,0.5]}"#)
        #expect(value["a"] == .int(-3))
    }

    @Test func prettyPrintsWithTwoSpaces() {
        let value: JSONValue = .object([("x", .array([.int(1)]))])
        #expect(value.text(pretty: true) == "{\n  \"x\": [\n    1\n  ]\n}")
    }

    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"), (951_782_400.25, "2000-02-29T00:00:00.250Z"),
        (1_795_653_060.5, "2026-11-26T00:31:00.500Z"), (4_107_542_399.0, "2100-02-28T23:59:59.000Z"),
    ])
    func formatsUTCTimestamps(_ seconds: Double, _ expected: String) {
        #expect(Timestamp.iso8601(seconds) == expected)
    }
}
