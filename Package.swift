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
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/setup).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),

        // OpenCV (Debian's libopencv-imgcodecs-dev, which ships no pkg-config file) behind a small C API.
        .target(name: "CImageCodec", path: "Sources/CImageCodec",
                cxxSettings: [.unsafeFlags(["-I/usr/include/opencv4"])],
                // libopencv_imgcodecs is opened on first use (codec.cpp `imgcodecs()`); the message hooks
                // of codec_messages.cpp are exported so that its libjpeg and libpng calls still reach them.
                linkerSettings: [.linkedLibrary("opencv_imgproc"), .linkedLibrary("opencv_core"), .linkedLibrary("jpeg"),
                                 .linkedLibrary("png16"), .linkedLibrary("dl"),
                                 .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=png_create_read_struct",
                                               "-Xlinker", "--export-dynamic-symbol=jpeg_std_error"])]),

        // Shared by both programs: SHA-256/MD5 (OpenSSL) and the canonical JSON hashed into identities;
        // the command-line glue (--shard i/n, the error-to-exit-code wrapper).
        .target(name: "WorkbenchSupport", dependencies: ["COpenSSL"], path: "Sources/WorkbenchSupport"),
        .target(name: "WorkbenchCLI", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "Sources/WorkbenchCLI"),

        // The extractor: images, engine, weight formats, backbone definitions, command line.
        .target(name: "Imaging", dependencies: ["CImageCodec", "WorkbenchSupport"],
                path: "Sources/Imaging", swiftSettings: release),
        // TensorFlow SAME padding, shared by the inference and the fine-tuning engines.
        .target(name: "ConvolutionWindow", path: "Sources/ConvolutionWindow", swiftSettings: release),
        .target(name: "BackboneEngine", dependencies: ["CDNNL", "ConvolutionWindow"],
                path: "Sources/BackboneEngine", swiftSettings: release),
        .target(name: "WeightFormats", dependencies: ["CHDF5"],
                path: "Sources/WeightFormats", swiftSettings: release),
        .target(name: "Backbones", dependencies: ["BackboneEngine", "FineTuneCore", "WeightFormats", "WorkbenchSupport"],
                path: "Sources/Backbones", swiftSettings: release),
        .executableTarget(name: "Extractor",
                          dependencies: ["Backbones", "FeatureStore", "FineTuneCore", "StoredFineTune", "Imaging", "HeadModel", "COpenBLAS", "WorkbenchCLI", "WeightFormats",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Extractor", swiftSettings: release),

        // The store shared by both programs: schema, migrations, all reads and writes of the SQLite file.
        .target(name: "FeatureStore", dependencies: ["WorkbenchSupport", .product(name: "GRDB", package: "GRDB.swift"),
                                                    .product(name: "GRDBSQLite", package: "GRDB.swift")],
                path: "Sources/FeatureStore", swiftSettings: release),

        // The head trainer: training core on OpenBLAS or oneDNN (Core/GEMM.swift), and the command line;
        // Backbones for `train-head export --format onnx`, which writes the backbone into the model.
        // Hot loops of the training step, with AVX-512/AVX2 variants chosen at run time.
        // Also oneDNN's sgemm for the trainer's GEMMs (gemm.c; libgomp is oneDNN's threading runtime).
        .target(name: "CHeadKernels", path: "Sources/CHeadKernels",
                linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        // A stored head for both programs: the one reader/writer of the head blob, and inference
        // (batch norm folded into the dense layers, OpenBLAS GEMMs) for `extract predict`.
        .target(name: "HeadModel", dependencies: ["COpenBLAS"], path: "Sources/HeadModel", swiftSettings: release),
        .target(name: "HeadTrainerCore", dependencies: ["COpenBLAS", "CHeadKernels", "FineTuneCore", "HeadModel"],
                path: "Sources/HeadTrainerCore", swiftSettings: release),
        .executableTarget(name: "HeadTrainer",
                          dependencies: ["Backbones", "WeightFormats", "HeadTrainerCore", "FeatureStore", "FineTuneCore", "StoredFineTune", "Imaging", "COpenBLAS", "WorkbenchSupport", "WorkbenchCLI",
                                         .product(name: "Yams", package: "Yams"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/HeadTrainer", swiftSettings: release),

        // Fine-tuning the last blocks of a backbone on cached block inputs (issue #12): oneDNN / OpenBLAS GEMMs.
        .target(name: "FineTuneCore", dependencies: ["COpenBLAS", "CDNNL", "CHeadKernels", "ConvolutionWindow"], path: "Sources/FineTuneCore", swiftSettings: release),
        // A fine-tuned head's blocks as stored, for both programs (predict, ONNX export, report).
        .target(name: "StoredFineTune", dependencies: ["FeatureStore", "FineTuneCore"], path: "Sources/StoredFineTune", swiftSettings: release),

        .testTarget(name: "WeightFormatsTests", dependencies: ["WeightFormats", "WorkbenchSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbones", "FineTuneCore", "WeightFormats", "BackboneEngine", "Imaging"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "HeadTrainerTests", dependencies: ["HeadTrainerCore", "HeadModel", "FineTuneCore", "WeightFormats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CLITests", dependencies: ["BackboneEngine", "FeatureStore", "FineTuneCore", "HeadTrainerCore", .product(name: "Yams", package: "Yams"),
                                                 .product(name: "GRDB", package: "GRDB.swift")],
                    resources: [.copy("Fixtures")]),
        // Fine-tuning the last blocks from cached block inputs: gradients against PyTorch fixtures.
        .testTarget(name: "FineTuneTests", dependencies: ["FineTuneCore", "CHeadKernels"], resources: [.copy("Fixtures")]),
        // Every reader of outside bytes under a deterministic mutation fuzzer (fixed seed, bounded count).
        .testTarget(name: "FuzzTests", dependencies: ["HeadModel", "Imaging", "WeightFormats", "WorkbenchSupport"], exclude: ["Regressions"]),
        .executableTarget(name: "FeatureStoreStress", dependencies: ["FeatureStore", "WorkbenchSupport"], path: "Tests/FeatureStoreStress"),
        .testTarget(name: "FeatureStoreTests", dependencies: ["FeatureStore", "FeatureStoreStress", "WorkbenchSupport",
                                                         .product(name: "GRDB", package: "GRDB.swift")],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "WorkbenchSupportTests", dependencies: ["WorkbenchSupport", "WorkbenchCLI"]),
        // Identity keys of existing stores (settings keys, policy hashes, sweep and trial keys) never change.
        .testTarget(name: "IdentityTests", dependencies: ["FeatureStore", "Imaging", "HeadTrainer", "HeadTrainerCore", "WorkbenchSupport",
                                                          .product(name: "Yams", package: "Yams")],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
