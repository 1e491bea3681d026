public import LingerLink
import UnixSignals

/// What `linger send` reads: files, stdin, or stdin through a spool.
public protocol ShippedInput: Sendable {
    /// Throws for input that no retry can make readable (a missing file, a directory), before the link
    /// connects: a user must not see "cannot connect" warnings for a mistake in the file names.
    func check() async throws
    /// Reads and queues everything (or, when following, until cancelled); returns the lines sent and the
    /// lines the server already held.
    func ship(report: @escaping @Sendable (SourceEvent) -> Void) async throws -> SourceTotals
    /// Called once every line is acknowledged.
    func acknowledged() async
}

extension ShippedInput {
    public func check() async throws {}
    public func acknowledged() async {}
}

/// Shows how a shipment goes while it runs (`--progress`); the CLI prints, the pipeline only calls.
public protocol ShipmentProgress: Sendable {
    /// Reports until cancelled.
    func run(until client: LinkClient) async
    /// The last report, once everything is acknowledged.
    func finish()
}

/// One run of `linger send`: the link client, the input feeding it, signals, progress and the verdict.
public struct Shipment: Sendable {
    public enum Outcome: Sendable {
        case delivered(count: UInt64, skipped: UInt64)
        case refused(String)
        case failed(String)
        /// SIGINT or SIGTERM: reading stopped; this many lines read were not acknowledged.
        case interrupted(unacknowledged: Int)
    }

    let client: LinkClient
    let input: any ShippedInput
    let progress: (any ShipmentProgress)?
    let report: @Sendable (SourceEvent) -> Void

    /// - Parameters:
    ///   - report: what the sources want said (the CLI words it, see ``SourceEvent``).
    public init(client: LinkClient, input: any ShippedInput, progress: (any ShipmentProgress)?, report: @escaping @Sendable (SourceEvent) -> Void) {
        self.client = client
        self.input = input
        self.progress = progress
        self.report = report
    }

    public func run() async -> Outcome {
        let reporter = progress
        do { try await input.check() } catch let error as SourceError {
            return .failed(error.message)
        } catch {
            return .failed("\(error)")
        }
        return await withTaskGroup(of: Outcome?.self) { group in
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
            group.addTask { await feed(reporter: reporter) }
            group.addTask {
                // SIGINT/SIGTERM: stop reading; the feed then reports what was left unacknowledged.
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    return .interrupted(unacknowledged: -1)
                }
                return nil
            }
            group.addTask {
                await reporter?.run(until: client)
                return nil
            }
            var outcome: Outcome?
            while let next = await group.next() {
                if let next { outcome = next; break }
            }
            if case .interrupted? = outcome {
                // Give the acknowledgements in flight a moment before anything is cancelled: cancelling the
                // group first cancelled the link's run task too, which drops the connection at once, so lines
                // the server had stored were reported unacknowledged.
                _ = try? await client.close(timeout: .seconds(2))
                group.cancelAll()
            } else {
                group.cancelAll()
                _ = try? await client.close(timeout: .seconds(1))
            }
            while await group.next() != nil {}
            if case .interrupted? = outcome { return .interrupted(unacknowledged: client.unacknowledged) }
            return outcome ?? .failed("the link stopped with \(client.unacknowledged) lines unacknowledged")
        }
    }

    private func feed(reporter: (any ShipmentProgress)?) async -> Outcome {
        do {
            let totals = try await input.ship(report: report)
            try await client.flush()
            await input.acknowledged()
            reporter?.finish()
            try await client.close()
            return .delivered(count: totals.sent + totals.skipped, skipped: totals.skipped)
        } catch let error as LinkError {
            if case .failed(let message) = outcome(of: error) {
                return .failed(message + " (\(client.unacknowledged) lines unacknowledged)")
            }
            return outcome(of: error)
        } catch let error as SourceError {
            return .failed(error.message + " (\(client.unacknowledged) lines unacknowledged)")
        } catch is CancellationError {
            return .interrupted(unacknowledged: client.unacknowledged)
        } catch {
            return .failed("\(error) (\(client.unacknowledged) lines unacknowledged)")
        }
    }

    /// Refusals that a retry cannot fix (exit 2), apart from failures (exit 1).
    private func outcome(of error: LinkError) -> Outcome {
        switch error.kind {
        case .rejected, .tls, .notALinkServer: return .refused(error.message)
        case .replaced: return .refused(error.message + "; stopping")
        default: return .failed(error.message)
        }
    }
}
