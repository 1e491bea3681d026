import LingerLink
import Logging
import MetricsTestKit
import NIOCore
import ServiceLifecycle
import Testing

/// The library API in one process over real loopback sockets: server and client as services.
struct LoopbackTests {
    @Test func deliversEverythingAndCountsIt() async throws {
        let serverMetrics = TestMetrics(), clientMetrics = TestMetrics()
        let sink = DiscardSink()
        let server = LinkServer(
            configuration: LinkServerConfiguration(host: "127.0.0.1", port: 0, sink: sink),
            logger: Logger(label: "server"), metrics: LinkMetrics(role: "server", factory: serverMetrics))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(try await server.listeningAddress().port)
            let client = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "loopback"),
                logger: Logger(label: "client"), metrics: LinkMetrics(role: "client", factory: clientMetrics))
            group.addTask { try await client.run() }
            #expect(try await client.start() == 0)
            for i in 1...500 { try await client.send(Array("message \(i)".utf8)) }
            try await client.send(contentsOf: (501...1000).map { Array("message \($0)".utf8) })
            try await client.flush()
            #expect(client.unacknowledged == 0)
            try await client.close()
            #expect(try clientMetrics.expectCounter("linger_link_messages_sent_total", [("role", "client")]).totalValue == 1000)
            #expect(try clientMetrics.expectCounter("linger_link_messages_acked_total", [("role", "client")]).totalValue == 1000)
            #expect(try serverMetrics.expectCounter("linger_link_messages_accepted_total", [("role", "server")]).totalValue == 1000)
            // A second client with the same id resumes after the server's mark.
            let again = LinkClient(
                configuration: LinkClientConfiguration(endpoints: [.init(host: "127.0.0.1", port: port)], clientID: "loopback"),
                logger: Logger(label: "client"))
            group.addTask { try await again.run() }
            #expect(try await again.start() == 1000)
            #expect(try await again.send(Array("next".utf8)) == 1001)
            try await again.close()
            group.cancelAll()
        }
    }
}
