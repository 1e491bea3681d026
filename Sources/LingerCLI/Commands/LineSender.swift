import LingerLink
import NIOCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Reads lines from a descriptor and feeds them to a ``LinkClient`` in large batches, skipping the lines the
/// server already holds (their count is the server's high-water mark for this client id).
struct LineSender {
    enum Outcome {
        case delivered(count: UInt64, skipped: UInt64)
        case refused(String)
        case failed(String)
    }

    let client: LinkClient
    let input: Int32
    let follow: Bool
    let progress: Bool

    func run() async -> Outcome {
        await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                do {
                    try await client.run()
                    return nil
                } catch let error as LinkError {
                    if case .rejected = error.kind { return .refused(error.message) }
                    return .failed(error.message)
                } catch {
                    return .failed("\(error)")
                }
            }
            group.addTask { await feed() }
            // Whichever finishes first decides, unless it is the client's run() ending normally.
            var outcome: Outcome?
            while let next = await group.next() {
                if let next { outcome = next; break }
            }
            group.cancelAll()
            _ = try? await client.close(timeout: .seconds(1))
            while await group.next() != nil {}
            return outcome ?? .failed("the link stopped")
        }
    }

    private func feed() async -> Outcome {
        let skip: UInt64
        do {
            skip = try await client.start()
        } catch let error as LinkError {
            if case .rejected = error.kind { return .refused(error.message) }
            return .failed(error.message)
        } catch {
            return .failed("\(error)")
        }
        var reader = LineReader(fd: input)
        var line: UInt64 = 0
        var reporter = ProgressReporter(enabled: progress, client: client)
        do {
            while true {
                let lines = reader.nextLines(follow: follow)
                if lines == nil { break }
                var batch = lines!
                if line < skip {
                    let drop = Int(min(UInt64(batch.count), skip - line))
                    line += UInt64(drop)
                    batch.removeFirst(drop)
                }
                if !batch.isEmpty {
                    try await client.send(contentsOf: batch)
                    line += UInt64(batch.count)
                }
                reporter.tick(sent: line)
                if batch.isEmpty && follow { try await Task.sleep(for: .milliseconds(200)) }
            }
            if let error = reader.error { return .failed("cannot read the input: \(error)") }
            while client.unacknowledged > 0 {
                try await Task.sleep(for: .milliseconds(20))
                reporter.tick(sent: line)
            }
            try await client.flush()
            reporter.finish(sent: line)
            try await client.close()
            return .delivered(count: line, skipped: min(skip, line))
        } catch let error as LinkError {
            if case .rejected = error.kind { return .refused(error.message) }
            return .failed(error.message + " (\(client.unacknowledged) lines unacknowledged)")
        } catch {
            return .failed("interrupted with \(client.unacknowledged) lines unacknowledged")
        }
    }
}

/// Splits a byte stream into lines without copying each line: a batch is slices of one read buffer.
struct LineReader {
    let fd: Int32
    private var carry: [UInt8] = []
    private var ended = false
    private(set) var error: String?
    static let blockSize = 1 << 20

    init(fd: Int32) { self.fd = fd }

    /// The next batch of complete lines (without newlines); `[]` when nothing new is there yet (follow
    /// mode); `nil` at the end of the input.
    mutating func nextLines(follow: Bool) -> [ArraySlice<UInt8>]? {
        if ended { return nil }
        var block = [UInt8](repeating: 0, count: Self.blockSize)
        var n: Int
        repeat { n = read(fd, &block, block.count) } while n < 0 && errno == EINTR
        if n < 0 {
            error = String(cString: strerror(errno))
            ended = true
            return nil
        }
        if n == 0 {
            if follow { return [] }
            ended = true
            if carry.isEmpty { return nil }
            defer { carry = [] }
            return [carry[...]]  // a last line without its newline is still a line
        }
        let data = carry.isEmpty ? Array(block[0..<n]) : carry + block[0..<n]
        var lines: [ArraySlice<UInt8>] = []
        lines.reserveCapacity(n / 32)
        var start = 0
        data.withUnsafeBufferPointer { bytes in
            var i = 0
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "\n") {
                    lines.append(data[start..<i])
                    start = i + 1
                }
                i += 1
            }
        }
        carry = Array(data[start...])
        return lines
    }
}

/// `--progress`: one status line on stderr, rewritten in place on a terminal.
struct ProgressReporter {
    let enabled: Bool
    let client: LinkClient
    private var last = ContinuousClock.now
    private var lastSent: UInt64 = 0
    private let started = ContinuousClock.now
    private let terminal = isatty(2) != 0

    init(enabled: Bool, client: LinkClient) {
        self.enabled = enabled
        self.client = client
    }

    mutating func tick(sent: UInt64) {
        guard enabled, ContinuousClock.now - last >= .milliseconds(500) else { return }
        let elapsed = ContinuousClock.now - last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = Double(sent - lastSent) / max(seconds, 0.001)
        last = .now
        lastSent = sent
        show(sent: sent, rate: rate, final: false)
    }

    func finish(sent: UInt64) {
        guard enabled else { return }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        show(sent: sent, rate: Double(sent) / max(seconds, 0.001), final: true)
    }

    private func show(sent: UInt64, rate: Double, final: Bool) {
        let inFlight = client.unacknowledged
        let text = "sent \(sent)  acked \(sent - UInt64(inFlight))  in flight \(inFlight)  reconnects \(client.reconnectCount)  \(Int(rate)) msg/s"
        StandardOutput.write(Array(((terminal && !final) ? "\r" + text + "   " : text + "\n").utf8), to: 2)
    }
}
