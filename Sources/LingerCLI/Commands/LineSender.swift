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
                    return self.outcome(of: error)
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

    /// Refusals that a retry cannot fix (exit 2), apart from failures (exit 1).
    private func outcome(of error: LinkError) -> Outcome {
        switch error.kind {
        case .rejected: return .refused(error.message)
        case .replaced: return .refused(error.message + "; stopping")
        default: return .failed(error.message)
        }
    }

    private func feed() async -> Outcome {
        let skip: UInt64
        do {
            skip = try await client.start()
        } catch let error as LinkError {
            return outcome(of: error)
        } catch {
            return .failed("\(error)")
        }
        var reader = LineReader(fd: input, blockSize: min(256 << 10, client.configuration.outboxMessages * 16))
        var line: UInt64 = 0
        var toSkip = skip
        var reporter = ProgressReporter(enabled: progress, client: client)
        do {
            while let (batch, lines) = reader.nextBatch(follow: follow, skipping: &toSkip) {
                line += UInt64(lines)
                if !batch.isEmpty { try await client.send(batch) }
                reporter.tick(sent: line)
                if lines == 0 && follow { try await Task.sleep(for: .milliseconds(200)) }
            }
            if let error = reader.error { return .failed("cannot read the input: \(error)") }
            try await client.flush()
            reporter.finish(sent: line)
            try await client.close()
            return .delivered(count: line, skipped: min(skip, line))
        } catch let error as LinkError {
            if case .failed(let message) = outcome(of: error) {
                return .failed(message + " (\(client.unacknowledged) lines unacknowledged)")
            }
            return outcome(of: error)
        } catch {
            return .failed("interrupted with \(client.unacknowledged) lines unacknowledged")
        }
    }
}

/// Splits a byte stream into lines and encodes them straight into a ``LinkBatch`` (no per-line allocation).
struct LineReader {
    let fd: Int32
    private var carry: [UInt8] = []
    private var ended = false
    private var block: [UInt8]
    private(set) var error: String?

    /// Reads up to `blockSize` bytes at a time: 256 KiB normally (batches that size are recycled by malloc;
    /// megabyte batches were fresh pages each time, and zeroing them was a quarter of the sender's time),
    /// less when the outbox is small, so one batch does not dwarf the outbox limit.
    init(fd: Int32, blockSize: Int = 256 << 10) {
        self.fd = fd
        block = [UInt8](repeating: 0, count: max(4096, blockSize))
    }

    /// The next batch of complete lines (without their newlines) and how many input lines it covered,
    /// including the first `skipping` lines, which are counted but not sent (the server has them).
    /// An empty batch means nothing new yet (follow mode); `nil` means the end of the input.
    mutating func nextBatch(follow: Bool, skipping: inout UInt64) -> (LinkBatch, Int)? {
        if ended { return nil }
        var n: Int
        repeat { n = read(fd, &block, block.count) } while n < 0 && errno == EINTR
        if n < 0 {
            error = String(cString: strerror(errno))
            ended = true
            return nil
        }
        var batch = LinkBatch(capacity: n + n / 4 + carry.count + 64)
        if n == 0 {
            if follow { return (batch, 0) }
            ended = true
            if carry.isEmpty { return nil }
            // A last line without its newline is still a line.
            if skipping > 0 { skipping -= 1 } else { batch.append(carry) }
            carry = []
            return (batch, 1)
        }
        var lines = 0
        var skip = skipping
        block.withUnsafeBufferPointer { bytes in
            let base = bytes.baseAddress!
            // memchr finds newlines with vector instructions; a byte loop here capped 1 KiB lines at ~1 M/s.
            func nextNewline(from index: Int) -> Int {
                guard index < n, let found = memchr(base + index, Int32(UInt8(ascii: "\n")), n - index) else { return n }
                return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            var start = 0
            if !carry.isEmpty {
                // Finish the line that straddles the previous block.
                let end = nextNewline(from: 0)
                carry += bytes[0..<end]
                if end < n {
                    if skip > 0 { skip -= 1 } else { batch.append(carry) }
                    lines += 1
                    carry = []
                    start = end + 1
                } else {
                    start = n
                }
            }
            while start < n {
                let end = nextNewline(from: start)
                guard end < n else {
                    carry += bytes[start..<n]
                    break
                }
                if skip > 0 { skip -= 1 } else { batch.append(UnsafeBufferPointer(rebasing: bytes[start..<end])) }
                lines += 1
                start = end + 1
            }
        }
        skipping = skip
        return (batch, lines)
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
