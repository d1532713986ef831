// swift-tools-version:6.0
// A transfer-learning workbench: frozen ImageNet backbones -> SQLite feature store -> fast softmax heads.
import PackageDescription

let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "TransferWorkbench",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "extract", targets: ["Extractor"]),
        .executable(name: "train-head", targets: ["HeadTrainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/setup).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),

        // The extractor: engine, weight formats, backbone definitions, command line.
        .target(name: "BackboneEngine", dependencies: ["CDNNL"],
                path: "Sources/Extractor/Engine", swiftSettings: release),
        .target(name: "WeightFormats", dependencies: [],
                path: "Sources/Extractor/Weights", swiftSettings: release),
        .target(name: "Backbones", dependencies: ["BackboneEngine", "WeightFormats", "COpenSSL"],
                path: "Sources/Extractor/Backbones", swiftSettings: release),
        .executableTarget(name: "Extractor",
                          dependencies: ["Backbones",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Extractor/CLI", swiftSettings: release),

        // The head trainer.
        .executableTarget(name: "HeadTrainer",
                          dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/HeadTrainer/CLI", swiftSettings: release),

        .testTarget(name: "WeightFormatsTests", dependencies: ["WeightFormats"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbones", "WeightFormats", "BackboneEngine"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
