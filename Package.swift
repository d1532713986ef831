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
        .library(name: "FeatureStore", targets: ["FeatureStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/setup).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),

        // OpenCV (Debian's libopencv-imgcodecs-dev, which ships no pkg-config file) behind a small C API.
        .target(name: "CImageCodec", path: "Sources/CImageCodec",
                cxxSettings: [.unsafeFlags(["-I/usr/include/opencv4"])],
                linkerSettings: [.linkedLibrary("opencv_imgcodecs"), .linkedLibrary("opencv_imgproc"),
                                 .linkedLibrary("opencv_core"), .linkedLibrary("jpeg"),
                                 // Linked directly so the shim's png_create_read_struct interposes
                                 // OpenCV's calls (codec_messages.cpp).
                                 .linkedLibrary("png16")]),

        // The extractor: images, engine, weight formats, backbone definitions, command line.
        .target(name: "Imaging", dependencies: ["CImageCodec", "COpenSSL"],
                path: "Sources/Extractor/Imaging", swiftSettings: release),
        .target(name: "BackboneEngine", dependencies: ["CDNNL"],
                path: "Sources/Extractor/Engine", swiftSettings: release),
        .target(name: "WeightFormats", dependencies: ["CHDF5"],
                path: "Sources/Extractor/Weights", swiftSettings: release),
        .target(name: "Backbones", dependencies: ["BackboneEngine", "WeightFormats", "COpenSSL"],
                path: "Sources/Extractor/Backbones", swiftSettings: release),
        .executableTarget(name: "Extractor",
                          dependencies: ["Backbones", "FeatureStore", "Imaging", "HeadTrainerCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Extractor/CLI", swiftSettings: release),

        // The store shared by both programs: schema, migrations, all reads and writes of the SQLite file.
        .target(name: "FeatureStore", dependencies: ["CSQLite", "COpenSSL"], path: "Sources/FeatureStore", swiftSettings: release),

        // The head trainer: training core on OpenBLAS, and the command line.
        // Hot loops of the training step, with AVX-512/AVX2 variants chosen at run time.
        .target(name: "CHeadKernels", path: "Sources/CHeadKernels"),
        .target(name: "HeadTrainerCore", dependencies: ["COpenBLAS", "CHeadKernels"],
                path: "Sources/HeadTrainer/Core", swiftSettings: release),
        .executableTarget(name: "HeadTrainer",
                          dependencies: ["HeadTrainerCore", "FeatureStore", "COpenBLAS", .product(name: "Yams", package: "Yams"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/HeadTrainer/CLI", swiftSettings: release),

        // Fine-tuning the last blocks of a backbone on cached block inputs (issue #12): oneDNN / OpenBLAS GEMMs.
        .target(name: "FineTuneCore", dependencies: ["COpenBLAS", "CDNNL"], path: "Sources/FineTune", swiftSettings: release),

        .testTarget(name: "WeightFormatsTests", dependencies: ["WeightFormats"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbones", "WeightFormats", "BackboneEngine", "Imaging"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "HeadTrainerTests", dependencies: ["HeadTrainerCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CLITests", dependencies: []),
        .testTarget(name: "FineTuneTests", dependencies: ["FineTuneCore"], resources: [.copy("Fixtures")]),
        .executableTarget(name: "FeatureStoreStress", dependencies: ["FeatureStore"], path: "Tests/FeatureStoreStress"),
        .testTarget(name: "FeatureStoreTests", dependencies: ["FeatureStore", "CSQLite", "FeatureStoreStress"]),
    ],
    swiftLanguageModes: [.v5]
)
