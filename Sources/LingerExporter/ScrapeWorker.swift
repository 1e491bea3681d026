@preconcurrency import Glibc
import LingerCore
import LingerProbe
import NIOCore

/// The one thread that reads the socket table. `setns()` binds a thread to a namespace, so the exporter's
/// HTTP side stays in the host namespace while this thread lives in the one being watched; scrapes are
/// handed to it one at a time, and it keeps the watch tracker (CLOSE_WAIT ages) between them.
final class ScrapeWorker: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var queue: [EventLoopPromise<[UInt8]>] = []
    private var stopping = false
    private var thread = pthread_t()
    private let namespace: String?
    private var ready: Result<Void, ProbeError>?

    /// Starts the thread and waits until it has entered the namespace (or failed to).
    init(namespace: String?, leakAgeSeconds: Double) throws {
        self.namespace = namespace
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        let box = Unmanaged.passRetained(Context(worker: self, leakAge: leakAgeSeconds))
        guard pthread_create(&thread, nil, { raw in
            let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
            context.worker.loop(leakAge: context.leakAge)
            return nil
        }, box.toOpaque()) == 0 else {
            box.release()
            throw ProbeError(.readFailed, "cannot start the scrape thread")
        }
        pthread_mutex_lock(&mutex)
        while ready == nil { pthread_cond_wait(&condition, &mutex) }
        let outcome = ready!
        pthread_mutex_unlock(&mutex)
        if case .failure(let error) = outcome {
            pthread_join(thread, nil)
            throw error
        }
    }

    private final class Context {
        let worker: ScrapeWorker
        let leakAge: Double
        init(worker: ScrapeWorker, leakAge: Double) {
            self.worker = worker
            self.leakAge = leakAge
        }
    }

    /// Queues a scrape; the promise gets the page (or the probe's error).
    func scrape(_ promise: EventLoopPromise<[UInt8]>) {
        pthread_mutex_lock(&mutex)
        queue.append(promise)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        pthread_join(thread, nil)
    }

    private func loop(leakAge: Double) {
        var outcome: Result<Void, ProbeError> = .success(())
        if let namespace {
            do { try NetworkNamespace.enter(namespace) } catch let error as ProbeError { outcome = .failure(error) } catch {}
        }
        pthread_mutex_lock(&mutex)
        ready = outcome
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
        guard case .success = outcome else { return }

        let probe = SocketProbe()
        var tracker = WatchTracker(leakAgeSeconds: leakAge)
        while true {
            pthread_mutex_lock(&mutex)
            while queue.isEmpty && !stopping { pthread_cond_wait(&condition, &mutex) }
            if stopping && queue.isEmpty {
                pthread_mutex_unlock(&mutex)
                return
            }
            let batch = queue
            queue.removeAll()
            pthread_mutex_unlock(&mutex)
            // Scrapes that queued up while one ran share its result: no point reading the table twice.
            let start = ContinuousClock.now
            do {
                if let namespace, access("\(NetworkNamespace.directory)/\(namespace)", F_OK) != 0 {
                    throw ProbeError(.namespaceNotFound, "network namespace '\(namespace)' is gone")
                }
                let snapshot = try probe.snapshot(
                    owners: .states(TCPStateSet([.closeWait, .established, .listen, .finWait2, .synSent]), retransmitting: true),
                    tcpInfo: true, orphanedDescriptors: true)
                let report = tracker.update(snapshot)
                let elapsed = (ContinuousClock.now - start).components
                let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
                let page = MetricsPage.render(snapshot: snapshot, report: report, scrapeSeconds: seconds)
                for promise in batch { promise.succeed(page) }
            } catch {
                for promise in batch { promise.fail(error) }
            }
        }
    }
}
