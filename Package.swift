// swift-tools-version:6.2
import PackageDescription

// Layering (see docs/ARCHITECTURE.md): LingerCore has no dependencies; LingerProbe reads the kernel through
// CLingerLinux; the `linger` executable is thin. Imports that cross these arrows fail the build, because each
// target declares only what it may import.
let package = Package(
    name: "linger",
    // No `platforms`: linger is a Linux tool (sock_diag, /proc, inotify, network namespaces) and its sources
    // import Glibc; claiming macOS would promise a build that does not exist.
    products: [
        .executable(name: "linger", targets: ["LingerCLI"]),
        .library(name: "LingerCore", targets: ["LingerCore"]),
        // Test peers (see Sources/LingerFixture); a product only so the binary gets its name.
        .executable(name: "linger-fixture", targets: ["LingerFixture"]),
        // The fan-in benchmark's senders: many link clients in one process (see Sources/LingerFanIn).
        .executable(name: "linger-fanin", targets: ["LingerFanIn"]),
        .library(name: "LingerProbe", targets: ["LingerProbe"]),
        .library(name: "LingerLink", targets: ["LingerLink"]),
        .library(name: "LingerLab", targets: ["LingerLab"]),
        .library(name: "LingerSources", targets: ["LingerSources"]),
        .library(name: "LingerPostgres", targets: ["LingerPostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .target(name: "LingerCore"),
        .target(name: "CLingerLinux"),
        .target(name: "LingerProbe", dependencies: ["LingerCore", "CLingerLinux"]),
        .target(
            name: "LingerLink",
            dependencies: [
                "CLingerZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // zlib from the system (Debian's zlib1g-dev), for rotated logs compressed with gzip.
        .target(name: "CLingerZlib", linkerSettings: [.linkedLibrary("z")]),
        // What `linger send` reads: files followed through rotation, named by content; a crash-safe spool for
        // stdin. It feeds the link's client, and reads on threads of its own (NIOPosix's thread pool).
        .target(
            name: "LingerSources",
            dependencies: [
                "LingerLink", "CLingerZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // A sink in PostgreSQL, shared by many collectors: epochs and marks live in the database. It sits
        // beside the file sink, above LingerLink's sink API, and is the only target that speaks SQL.
        .target(
            name: "LingerPostgres",
            dependencies: [
                "LingerLink",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The lab reproduces pathologies with real peers and observes them through the probe: it sits above
        // LingerProbe (see docs/ARCHITECTURE.md), beside LingerLink.
        .target(name: "LingerLab", dependencies: ["LingerCore", "LingerProbe", "CLingerLinux"]),
        // Serves the probe's view as Prometheus metrics; like the lab, it sits above LingerProbe.
        .target(
            name: "LingerExporter",
            dependencies: [
                "LingerCore", "LingerProbe",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "LingerCLI",
            dependencies: [
                "LingerCore", "LingerProbe", "LingerLink", "LingerSources", "LingerLab", "LingerExporter", "LingerPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Real peers for integration tests and benchmarks: plain POSIX sockets put into a chosen TCP state
        // and held there until stdin closes. Not part of the toolkit's API.
        .executableTarget(name: "LingerFixture", dependencies: ["CLingerLinux"]),
        // The fan-in benchmark's load: N `LinkClient`s in one process, each shipping a file as `linger send` does,
        // so that a 2-core machine measures the server's fan-in rather than N process start-ups. Not API.
        .executableTarget(
            name: "LingerFanIn",
            dependencies: ["LingerLink", "LingerSources", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "LingerCoreTests", dependencies: ["LingerCore"]),
        .testTarget(
            name: "LingerProbeTests",
            dependencies: ["LingerProbe", "LingerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "LingerLinkTests",
            dependencies: [
                "LingerLink", "CLingerZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "LingerLabTests", dependencies: ["LingerLab", "LingerCore"]),
        .testTarget(
            name: "LingerSourcesTests",
            dependencies: ["LingerSources", "LingerLink", "CLingerZlib", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "LingerPostgresTests",
            dependencies: [
                "LingerPostgres", "LingerLink",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LingerIntegrationTests",
            // Runs the built binaries: it depends on the executables so that they are built, and imports neither.
            // CLingerZlib only to read the PNG screenshots Chromium takes of the lab report.
            dependencies: ["LingerCLI", "LingerFixture", "CLingerZlib"]
        ),
    ]
)

for target in package.targets where target.type != .system && !target.name.hasPrefix("CLinger") {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}

// The fuzz targets (Fuzz/, docs/FUZZING.md) join the package only when scripts/fuzz asks (LINGER_FUZZ=1): they
// need libFuzzer (`-sanitize=fuzzer,address -parse-as-library`) and `@testable` access to debug builds, so
// ordinary builds, tests and release builds never see them.
if Context.environment["LINGER_FUZZ"] == "1" {
    package.products.append(.executable(name: "linger-fuzz", targets: ["LingerFuzz"]))
    package.targets.append(
        .executableTarget(
            name: "LingerFuzz",
            dependencies: [
                "LingerLink", "LingerProbe", "LingerSources", "LingerCore", "CLingerZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/Sources/LingerFuzz"
        ))
}
