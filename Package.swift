// swift-tools-version:6.0
import PackageDescription

/// Functions are started once per request by fcgiwrap, so start-up cost is on every request's path:
/// release builds link the Swift runtime statically (see Makefile: --static-swift-stdlib) and no
/// function links libcurl (only `draven-deliver` and the CLI do).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "draven",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "trigger", targets: ["trigger"]),
        .executable(name: "status", targets: ["status"]),
        .executable(name: "webhook-receive", targets: ["webhook-receive"]),
        .executable(name: "approve", targets: ["approve"]),
        .executable(name: "heartbeat", targets: ["heartbeat"]),
        .executable(name: "rollback", targets: ["rollback"]),
        .executable(name: "console", targets: ["console"]),
        .executable(name: "plans", targets: ["plans"]),
        .executable(name: "draven-deliver", targets: ["draven-deliver"]),
        .executable(name: "draven", targets: ["draven"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Core/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CSodium", path: "Core/CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        // zlib: archived job logs are stored deflate-compressed (Core/DravenCore/Support/Deflate.swift).
        .systemLibrary(name: "CZlib", path: "Core/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CCurl", path: "Core/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(
            name: "DravenCore",
            dependencies: ["CSQLite", "CSodium", "CZlib"],
            path: "Core/DravenCore",
            swiftSettings: swiftSettings
        ),
        // The request handlers, one `Function` per executable; depends on the domain, never the other way.
        .target(
            name: "DravenFunctions",
            dependencies: ["DravenCore"],
            path: "Core/DravenFunctions",
            swiftSettings: swiftSettings
        ),
        // The only library that links libcurl; only draven-deliver and the CLI depend on it.
        .target(
            name: "DravenOutbound",
            dependencies: ["DravenCore", "CCurl"],
            path: "Core/DravenOutbound",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "draven-deliver", dependencies: ["DravenOutbound"], path: "Functions/deliver",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "trigger", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/trigger",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "status", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/status",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "webhook-receive", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/webhook-receive",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "approve", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/approve",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "heartbeat", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/heartbeat",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "rollback", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/rollback",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "console", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/console",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "plans", dependencies: ["DravenCore", "DravenFunctions"], path: "Functions/plans",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "draven",
            dependencies: [
                "DravenCore",
                "DravenOutbound",
                "DravenTOML",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            path: "CLI/draven"
        ),
        // TOML configurations as the JSON tree Core validates (the CLI, and the fuzz target `toml`).
        .target(
            name: "DravenTOML",
            dependencies: ["DravenCore", .product(name: "TOMLKit", package: "TOMLKit")],
            path: "CLI/DravenTOML",
            swiftSettings: swiftSettings
        ),
        // Measurements (make bench-secrets); not shipped.
        .executableTarget(
            name: "bench-secrets", dependencies: ["DravenCore"], path: "bench/secrets-read",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "DravenCoreTests",
            dependencies: ["DravenCore", "DravenFunctions"],
            path: "Tests/DravenCoreTests",
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer targets (`make fuzz`, `make fuzz-smoke`): declared only for the sanitized build, whose
// flags (-sanitize=fuzzer,address) must not reach the shipped binaries. See Tests/Fuzz/README.md.
if Context.environment["DRAVEN_FUZZ"] != nil {
    package.products.append(.executable(name: "draven-fuzz", targets: ["draven-fuzz"]))
    package.targets.append(
        .executableTarget(
            name: "draven-fuzz",
            dependencies: ["DravenCore", "DravenFunctions", "DravenTOML", "CSQLite", "FuzzDriver"],
            path: "Tests/Fuzz/Sources",
            swiftSettings: swiftSettings + [.swiftLanguageMode(.v5)]  // a single-threaded harness with global fixtures
        ))
    package.targets.append(.target(name: "FuzzDriver", path: "Tests/Fuzz/Driver"))
}
