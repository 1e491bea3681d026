// linger-fanin: many link senders in one process, for the fan-in benchmark (scripts/bench-link).
//
//   linger-fanin HOST:PORT FILE... [--client-id-prefix P]
//
// Each FILE gets a sender of its own: its own `LinkClient`, client id (P-0, P-1, …) and connection, shipping
// the file exactly as `linger send --file FILE` does (`FollowedFile` on `SourceIO`'s threads), all on one event
// loop group. It exits 0 once every sender had every line acknowledged and closed, 1 otherwise.
//
// Why it exists: on a machine with fewer cores than senders, 32 `linger send` processes measure 32 process
// start-ups (Swift's runtime and ArgumentParser, about 17 ms of CPU each) as much as the server's fan-in.
// In a fleet each sender starts on its own machine. One process with 32 senders puts the same protocol work
// on the wire, with the same code per line, and leaves the server's fan-in as what the benchmark measures;
// scripts/bench-link reports both, each against its own one-sender baseline.
import LingerLink
import LingerSources
import Logging

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

func fail(_ message: String) -> Never {
    fputs("linger-fanin: \(message)\n", stderr)
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var prefix = "fan"
if let flag = arguments.firstIndex(of: "--client-id-prefix") {
    guard flag + 1 < arguments.count else { fail("--client-id-prefix needs a value") }
    prefix = arguments[flag + 1]
    arguments.removeSubrange(flag...(flag + 1))
}
if arguments.first == "--help" || arguments.count < 2 {
    print("usage: linger-fanin HOST:PORT FILE... [--client-id-prefix P]  (one link sender per FILE, in one process)")
    exit(arguments.first == "--help" ? 0 : 2)
}
let server = arguments[0]
guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]) else {
    fail("expected HOST:PORT, got \(server)")
}
let host = String(server[..<colon])
let files = Array(arguments.dropFirst())
for path in files where !((try? InputFile.checkReadable(path)) ?? false) { fail("cannot read \(path)") }

/// One sender: `linger send --file path`'s client and reader, without its command line.
func ship(_ path: String, clientID: String, to endpoint: LinkClientConfiguration.Endpoint, io: SourceIO) async -> Bool {
    var logger = Logger(label: "linger-fanin")
    logger.logLevel = .error
    let client = LinkClient(
        configuration: LinkClientConfiguration(endpoints: [endpoint], clientID: clientID),
        logger: logger)
    return await withTaskGroup(of: Bool?.self) { group in
        group.addTask {
            do { try await client.run() } catch { fputs("linger-fanin: \(clientID): \(error)\n", stderr); return false }
            return nil
        }
        group.addTask {
            do {
                _ = try await FileShipper(patterns: [path], client: client, io: io, options: FileInputOptions()).ship { _ in }
                try await client.flush()
                try await client.close()
                return true
            } catch {
                fputs("linger-fanin: \(clientID): \(error)\n", stderr)
                return false
            }
        }
        var result: Bool?
        while let next = await group.next() {
            if let next { result = next; break }
        }
        group.cancelAll()
        while await group.next() != nil {}
        return result ?? false
    }
}

let io = SourceIO(threads: 3)
let endpoint = LinkClientConfiguration.Endpoint(host: host, port: port)
let delivered = await withTaskGroup(of: Bool.self) { group in
    for (index, path) in files.enumerated() {
        group.addTask { await ship(path, clientID: "\(prefix)-\(index)", to: endpoint, io: io) }
    }
    var all = true
    for await ok in group { all = all && ok }
    return all
}
await io.shutdown()
exit(delivered ? 0 : 1)
