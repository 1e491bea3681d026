import ArgumentParser
import LingerExporter
import LingerProbe
import NIOCore
import Logging
import ServiceLifecycle
import UnixSignals

/// `linger export`: Prometheus metrics for fleets.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Serve the TCP table as Prometheus metrics at /metrics (and /healthz), on 127.0.0.1:9977 by default.",
        discussion: """
            Every scrape reads the table fresh: sockets per state; CLOSE_WAIT and ESTABLISHED per process (top 10 \
            plus "other", with pid and process labels); the age of each process's oldest CLOSE_WAIT socket and \
            whether it leaks; TIME_WAIT per destination with its share of the ephemeral ports; the doctor's \
            findings per rule and severity; the kernel counters that name problems; the scrape's own duration. \
            Alert rules: deploy/prometheus/linger-alerts.yml; running it on every machine: docs/FLEET.md. \
            With --tls-cert and --tls-key (PEM) it serves HTTPS only (TLS 1.2 or later), as node_exporter's web \
            config does: for an exporter listening beyond loopback. Plain HTTP on 127.0.0.1 stays the default.
            """
    )

    @Option(help: ArgumentHelp("Address to serve on, HOST:PORT (default: 127.0.0.1:9977).", valueName: "host:port"), transform: HostPort.parse)
    var listen = HostPort(host: "127.0.0.1", port: 9977)

    @Option(name: .customLong("netns"), help: ArgumentHelp("Export this network namespace instead of the exporter's own.", valueName: "name"))
    var namespace: String?

    @Option(name: .customLong("leak-age"), parsing: .unconditional, help: ArgumentHelp("Seconds before a stuck CLOSE_WAIT socket marks its process as leaking.", valueName: "seconds"))
    var leakAge: Double = 60

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Serve HTTPS with this PEM certificate (chain).", valueName: "pem"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "pem"))
    var tlsKey: String?

    @Flag(help: "Log to stderr at debug level.")
    var verbose = false

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard leakAge > 0, leakAge.isFinite else { throw ValidationError("--leak-age must be a number of seconds above 0, got \(leakAge)") }
    }

    func run() async throws {
        let logger = makeLogger(label: "linger.export", verbose: verbose)
        let exporter: ExporterService
        do {
            let tls = tlsCert.flatMap { cert in tlsKey.map { ExporterTLS(certificatePath: cert, keyPath: $0) } }
            exporter = try ExporterService(
                host: listen.host, port: listen.port, namespace: namespace, leakAgeSeconds: leakAge, tls: tls, logger: logger)
        } catch let error as ProbeError {
            StandardOutput.note(error.message)
            throw ExitCode(3)
        } catch let error as ExporterError {
            StandardOutput.note(error.description)
            throw ExitCode.failure
        }
        let group = ServiceGroup(configuration: .init(services: [exporter], gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycleLogger(logger)))
        async let announce: Void = {
            for _ in 0..<200 {
                if let address = exporter.localAddress {
                    StandardOutput.note("serving metrics on \(tlsCert == nil ? "http" : "https")://\(address.ipAddress ?? listen.host):\(address.port ?? listen.port)/metrics"
                        + (namespace.map { " for network namespace \($0)" } ?? ""))
                    return
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }()
        do {
            try await group.run()
        } catch let error as ExporterError {
            StandardOutput.note(error.description)
            throw ExitCode.failure
        } catch {
            StandardOutput.note("\(error)")
            throw ExitCode.failure
        }
        await announce
    }
}
