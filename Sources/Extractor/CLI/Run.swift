import ArgumentParser
import BackboneEngine
import Backbones
import FeatureStore
import Foundation
import Imaging

/// `extract --backbone NAME --data DIR`: features of every image and of K augmented copies, into
/// the store, computing only what the store does not have yet.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Extract features of a folder of images into the feature store (the default command).",
        discussion: """
        DIR holds one folder per class (DIR/<class>/*), or predefined splits (DIR/train/<class>/*, \
        DIR/test/<class>/*; seg_train/seg_test too). Each image is identified by the SHA-256 of its bytes, \
        so a renamed file is not extracted twice and a changed one is. Re-running the same command does no \
        backbone work for what is already stored; more copies (--augment), new images or another backbone \
        compute only what is missing. Bad files are reported, recorded in the store and skipped.

        Preprocessing belongs to the backbone and to the source of its weights (Keras VGG16/ResNet: BGR \
        with the ImageNet mean subtracted on 0-255; Keras EfficientNetB0: 0-255, normalised inside; \
        torchvision/timm: RGB 0-1 with ImageNet mean and std; EfficientNet-Lite: (x - 127) / 128). Give \
        image files as they are: there is nothing to rescale, and no option to do it.

        Sharding across machines: run `--shard i/n` (i = 0..n-1) on n machines, each with its own --store, \
        then `extract store merge OUT shard*.sqlite`.
        """)

    @OptionGroup var options: BackboneOptions
    @Option(help: "Dataset folder (DIR/<class>/* or DIR/train|test/<class>/*).") var data: String
    @Option(help: "Feature store file (created if missing).") var store = "features.sqlite"
    @Option(help: ArgumentHelp("Which output to store: features (the pooled penultimate features) or fc7 (VGG16's 4,096-d fully connected layer; needs the weights file with the classifier and the 224 input).",
                               valueName: "features|fc7"))
    var feature = FeatureSource.defaultOutput
    @Option(help: "Augmented copies per image in addition to the original (copy 0).") var augment = 0
    @Option(help: "Augmentation policy JSON file (default: the standard six augmentations).") var policy: String?
    @Option(help: "Seed of the augmentations.") var seed: UInt64 = 0
    @Option(name: .customLong("image-size"), help: "Input size (default: the backbone's own).") var imageSize: Int?
    @Option(help: "pad (keep aspect ratio, zero-pad), stretch or center-crop.") var fit: Fit = .pad
    @Option(help: "Images per forward pass.") var batch = 16
    @Option(help: "fp32 or bf16 (bf16 convolutions, fp32 features).") var precision: Precision = .fp32
    @Option(help: "Stored feature type: f32 or f16 (half the file).") var dtype: FeatureDType = .f32
    @Option(help: "Take a deterministic 1/n of the images: i/n with i in 0..n-1.") var shard: String?
    @Option(name: .customLong("max-pixels"), help: "Refuse images with more pixels than this (checked before decoding).")
    var maxPixels = ImageCodec.defaultMaxPixels
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "Print the summary as JSON.") var json = false

    func validate() throws {
        guard augment >= 0, augment <= 1000 else { throw ValidationError("--augment must be between 0 and 1000") }
        guard batch >= 1, batch <= 1024 else { throw ValidationError("--batch must be between 1 and 1024") }
        if let s = imageSize, s < 32 || s > 1024 { throw ValidationError("--image-size must be between 32 and 1024") }
        if let shard { _ = try Shard(shard) }
        if feature != FeatureSource.defaultOutput, let spec = try? Backbones.named(options.backbone),
           !spec.classifierOutputs.contains(feature) {
            let offered = Backbones.all.filter { !$0.classifierOutputs.isEmpty }
                .map { "\($0.id): \($0.classifierOutputs.joined(separator: ", "))" }
            throw ValidationError("--feature \(feature): \(spec.id) offers \((["features"] + spec.classifierOutputs).joined(separator: ", ")); "
                                  + "other outputs exist for \(offered.joined(separator: "; "))")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: data, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("--data \(data) is not a folder")
        }
    }

    struct Summary: Encodable {
        let store: String, extraction_id: Int64, backbone: String, images: Int, new_features: Int, reused_features: Int
        let failed: Int, seconds: Double, images_per_second: Double
    }

    func run() throws {
        _ = options.configureThreads()
        try failing { try extract() }
    }

    private func extract() throws {
        let started = Date()
        let source = FeatureSource(spec: try Backbones.named(options.backbone), output: feature)
        let spec = source.spec
        let policyValue = try policy.map { try AugmentationPolicy.fromJSON(Data(contentsOf: URL(fileURLWithPath: $0))) }
            ?? .standard
        let size = imageSize ?? spec.inputSize
        if source.needsClassifier && size != spec.inputSize {
            throw ValidationError("--feature \(feature) comes after the classifier's first layer, which only takes \(spec.inputSize)x\(spec.inputSize) inputs; drop --image-size")
        }
        let root = URL(fileURLWithPath: data).standardizedFileURL
        let scan = try DatasetScan.scan(root)
        var items = scan.items
        if let shard { items = try Shard(shard).select(items, root: root) }

        let db = try FeatureStore(path: store, mode: .create)
        let dataset = try db.dataset(root: root.path, classes: scan.classes, name: root.lastPathComponent)
        // The store's class list is authoritative: a class folder added later appends, never shifts labels.
        let classIndex = Dictionary(uniqueKeysWithValues: dataset.classes.enumerated().map { ($1, $0) })
        var failed = 0
        for p in scan.problems {
            try db.recordFailure(datasetID: dataset.id, extractionID: nil, path: p.path, reason: p.reason)
            log("skipped \(p.path): \(p.reason)")
            failed += 1
        }

        // Identify every image by content before any decoding: what the store has is never recomputed.
        var records: [ImageRecord] = []
        var usable: [DatasetItem] = []
        for item in items {
            do {
                let bytes = try Data(contentsOf: item.path)
                let header = try ImageCodec.probe(data: bytes, name: item.path.path)
                guard header.width * header.height <= maxPixels else {
                    throw ImagingError.invalidArgument("\(header.width)x\(header.height) pixels is above --max-pixels \(maxPixels)")
                }
                let relative = String(item.path.standardizedFileURL.path.dropFirst(root.path.count + 1))
                records.append(ImageRecord(datasetID: dataset.id, sha256: ContentHash.sha256Hex(bytes), path: relative,
                                           classIndex: classIndex[item.className] ?? item.classIndex,
                                           split: item.split == "test" ? .test : .train,
                                           width: header.width, height: header.height))
                usable.append(item)
            } catch {
                failed += 1
                let reason = (error as? ImagingError)?.reason ?? "\(error)"
                try db.recordFailure(datasetID: dataset.id, extractionID: nil, path: item.path.path, reason: reason)
                log("skipped \(item.path.path): \(reason)")
            }
        }
        guard !usable.isEmpty else {
            throw ValidationError("\(root.path): no usable image (\(failed) skipped); nothing to extract")
        }
        let ids = try db.upsertImages(records)
        let imageID = Dictionary(zip(usable.map(\.path), ids), uniquingKeysWith: { a, _ in a })

        // Scoped so the loaded weights are freed once compiled (the extractor keeps the backbone without them).
        let extractor = try FeatureExtractor(try source.load(weights: options.weightsURL), batch: batch, size: size,
                                             precision: precision, outputs: [feature])
        let loaded = extractor.backbone
        let settings = ExtractionSettings(
            datasetID: dataset.id, backbone: source.storedName, weightsSHA256: loaded.weightsSHA256,
            weightsSource: loaded.weightsSource, preprocessing: loaded.preprocessing.description,
            augmentationPolicy: policyValue.canonicalJSON, imageSize: size, fit: fit.rawValue,
            precision: precision.rawValue, featureDType: dtype, featureDim: extractor.dimension(feature),
            toolVersion: toolVersion, seed: Int64(bitPattern: seed))
        let extraction = try db.extraction(for: settings)
        let existing = try db.existingFeatureKeys(extractionID: extraction.id)
        let wanted = Array(0...augment)
        var reused = 0
        let pipeline = try ImagePipeline(
            items: usable, size: size, fit: fit, policy: policyValue,
            copiesFor: { item in
                let id = imageID[item.path]!
                let missing = wanted.filter { !existing.contains(FeatureKey(imageID: id, augIndex: $0)) }
                reused += wanted.count - missing.count
                return missing
            },
            seed: seed, batchSize: batch, threads: ProcessInfo.processInfo.activeProcessorCount, maxPixels: maxPixels)
        // Decoding never competes with the forward pass's threads (a pre-empted oneDNN thread stalls
        // its partner at the next barrier): workers take idle cycles, and the consumer decodes too
        // whenever it would otherwise wait. tools/bench/extract_e2e.sh measures the result (end to
        // end against forward-only); one-off timers around the phases on scenes6 with Lite0 showed
        // the forward pass itself 12-15% slower with one normal-priority decoding worker instead.
        pipeline.idlePriority = true

        let progress = Progress(total: pipeline.plannedImages, label: "\(spec.id)", quiet: quiet)
        var written = 0
        try pipeline.run({ b in
            let features = try extractor.run(rgb: b.pixels, count: b.count)[feature]!
            let dim = extractor.dimension(feature)
            let rows = b.entries.enumerated().map { i, e in
                FeatureRow(imageID: imageID[e.item.path]!, augIndex: e.copy,
                           values: Array(features[i * dim ..< (i + 1) * dim]))
            }
            written += try db.insertFeatures(extractionID: extraction.id, rows: rows)
            progress.advance(by: b.count)
        }, onSkip: { skip in
            failed += 1
            try? db.recordFailure(datasetID: dataset.id, extractionID: extraction.id, path: skip.path, reason: skip.reason)
            log("skipped \(skip.path): \(skip.reason)")
            progress.advance(by: 0, skipped: 1)
        })
        progress.finish()
        try db.finishExtraction(extraction.id)

        let seconds = Date().timeIntervalSince(started)
        let summary = Summary(store: store, extraction_id: extraction.id, backbone: source.storedName, images: usable.count,
                              new_features: written, reused_features: reused, failed: failed, seconds: seconds,
                              images_per_second: progress.rate)
        if json {
            try printJSON(summary)
        } else if !quiet {
            print(String(format: "%@: %d new features, %d reused, %d failed, %.1f s (extraction %lld in %@)",
                         source.storedName, written, reused, failed, seconds, extraction.id, store))
        }
    }

    private func log(_ s: String) {
        if !quiet { FileHandle.standardError.write(Data("\(s)\n".utf8)) }
    }
}

/// `--shard i/n`: a deterministic 1/n of the images, by a hash of each image's path relative to
/// the dataset root (so every machine agrees without coordination).
struct Shard {
    let index: Int
    let count: Int

    init(_ text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard must be i/n with 0 <= i < n (e.g. 0/4), got \(text)")
        }
        index = i
        count = n
    }

    func select(_ items: [DatasetItem], root: URL) -> [DatasetItem] {
        items.filter { item in
            let relative = item.path.standardizedFileURL.path.dropFirst(root.path.count)
            var h: UInt64 = 0xcbf29ce484222325  // FNV-1a
            for b in relative.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
            return Int(h % UInt64(count)) == index
        }
    }
}

/// Recorded with every extraction (provenance only: a new version resumes an old extraction).
let toolVersion = "0.1.0"

extension FeatureDType: ExpressibleByArgument {}
