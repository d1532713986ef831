import ArgumentParser
import BackboneEngine
import Backbones
import FeatureStore
import Foundation
import Imaging
import WorkbenchCLI

/// `extract --backbone NAME --data DIR`: features of every image and of K augmented copies, into
/// the store, computing only what the store does not have yet.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Extract features of a folder of images into the feature store (the default command).",
        discussion: """
        DIR holds one folder per class (DIR/<class>/*), or predefined splits (DIR/train/<class>/*, \
        DIR/test/<class>/*; seg_train/seg_test too), and with --unlabeled also DIR/unlabeled/ (images without \
        a class, for `train-head --pseudo-label`). Each image is identified by the SHA-256 of its bytes, \
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
    @Option(help: ArgumentHelp("fp32, bf16 (bf16 convolutions, but an image convolution that a depthwise one reads stays fp32 with it and the 1x1 one after it; `extract bench --precision bf16 --verbose` marks them; fp32 features; on scenes6, EfficientNet-Lite0/1/2's lowest cosine to fp32 features is 0.9988/0.9982/0.9937) or auto: bf16 only where it is measured or known faster on this CPU. bf16 needs oneDNN's AVX-512 kernels: on a CPU with only AVX2 (Haswell to Zen 3) it is refused and auto is fp32. auto resumes the precision of an extraction in --store with otherwise equal settings; else a probe times a few convolutions (runs stop after 0.3 s) in both precisions and picks bf16 at >= 1.2x fp32's speed, fp32 at <= 0.75x; in between, or if the probe fails, a table of /proc/cpuinfo decides (bf16 with AMX and on AMD Zen 4/5 with avx512_bf16, fp32 elsewhere). Under --convolution auto the probe's ratio (and the table's 2x) is first weighed by the share of the network's fp32 work that runs as Winograd at an assumed 2x (VGG16: 99%, so fp32 on Zen 5). The run says which and why. A new extraction with --cache-blocks is fp32 under auto: fine-tuning recomputes the cached blocks in fp32. int8 (never picked by auto): int8 convolutions (u8/s8 activations, s8 weights per output channel) calibrated on \(Int8Calibration.defaultImages) images spread over the run's dataset; the image's convolution, the depthwise convolution reading its output, squeeze-excite convolutions, pools and dense layers stay fp32 (`extract bench --precision int8 --verbose` names each convolution's type); a resumed int8 extraction reuses its stored calibration. Without VNNI (oneDNN's instruction set below AVX512_CORE_VNNI or AVX2_VNNI) int8 weights are limited so that oneDNN's 16-bit sums of pairs of products cannot overflow (each pair of adjacent input channels' weights within 128 levels, or 63 levels where oneDNN halves them; recorded in the calibration as weightRule pairs16); a calibration made with full 8-bit weights is calibrated again there, as a new extraction. A new calibration is checked on its images: their int8 features against fp32 ones (lowest and median cosine on stderr and in --json's int8_check; a warning below 0.99). The extraction records the precision used (int8: with its calibration).",
                               valueName: "auto|fp32|bf16|int8"))
    var precision: PrecisionRequest = .auto
    @Option(help: ConvolutionAlgorithm.help) var convolution: ConvolutionAlgorithm = .auto
    @Option(help: "Stored feature type: f32 or f16 (half the file).") var dtype: FeatureDType = .f32
    @Option(help: "Take a deterministic 1/n of the images: i/n with i in 0..n-1.") var shard: String?
    @Option(name: .customLong("max-pixels"), help: "Refuse images with more pixels than this (checked before decoding).")
    var maxPixels = ImageCodec.defaultMaxPixels
    @Option(name: .customLong("max-file-bytes"), help: "Refuse files larger than this many bytes (checked before reading).")
    var maxFileBytes = ImageCodec.maxFileBytes
    @Option(help: ArgumentHelp("What to do with an image whose exact bytes are under two or more classes (a label conflict): drop keeps it out of training and evaluation; keep-first/keep-last label it with the class of its first/last path (sorted). An image in both train and test is always stored as test. `extract store audit` lists all of them.",
                               valueName: "drop|keep-first|keep-last"))
    var conflicts: ConflictPolicy = .drop
    @Option(name: .customLong("cache-blocks"), help: ArgumentHelp("Also store, for every image and copy, the input of the backbone's last N blocks (f16), and those blocks' definition and weights: what `train-head --unfreeze M` (M <= N) fine-tunes from. EfficientNet-Lite0/1/2 and B0: N = 1...4 (Lite0 N = 1: the 192x7x7 input of _blocks.15, 18,816 bytes per copy); ResNet50/101: 1...2 (bottlenecks, 2048x7x7, 200,704 bytes); VGG16: 1...3 (block 5's convolutions, 512x14x14, 200,704 bytes).", valueName: "N"))
    var cacheBlocks: Int?
    @Option(name: .customLong("cache-dtype"), help: ArgumentHelp("How --cache-blocks stores the block inputs: f16 (half the bytes; features recomputed from them differ from the stored ones by ~1e-4 relative L2) or f32 (~1e-6).", valueName: "f16|f32"))
    var cacheDType: FeatureDType = .f16
    @Flag(help: ArgumentHelp("Also store the images of DIR/\(DatasetScan.unlabeledFolder)/ (any sub-folders), without a class, as split unlabeled: what `train-head --pseudo-label` labels. Needs a store of schema 7 (older stores are migrated)."))
    var unlabeled = false
    @Flag(inversion: .prefixedNo, help: ArgumentHelp("With --precision int8: depthwise convolutions in int8 (the default) or, with --no-int8-depthwise, in fp32: slower, and a little closer to fp32. EfficientNet-Lite on all 2,400 scenes6 images (tools/bench/int8_quality.sh), lowest cosine of int8 to fp32 features with / without int8 depthwise: Lite0 0.9938 / 0.9948, Lite1 0.9928 / 0.9937, Lite2 0.9913 / 0.9923 (README: speed). Recorded with the calibration: each choice is its own extraction."))
    var int8Depthwise = true
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: "Print the summary as JSON.") var json = false

    func validate() throws {
        guard augment >= 0, augment <= 1000 else { throw ValidationError("--augment must be between 0 and 1000") }
        guard batch >= 1, batch <= 1024 else { throw ValidationError("--batch must be between 1 and 1024") }
        if let s = imageSize, s < 32 || s > 1024 { throw ValidationError("--image-size must be between 32 and 1024") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be > 0") }
        guard maxFileBytes > 0 else { throw ValidationError("--max-file-bytes must be > 0") }
        if let shard { _ = try Shard(shard) }
        try precision.validate()
        if precision != .int8, !int8Depthwise {
            throw ValidationError("--no-int8-depthwise applies to --precision int8 only")
        }
        if precision == .int8, cacheBlocks != nil {
            throw ValidationError("--precision int8 with --cache-blocks: fine-tuning recomputes the cached blocks in fp32; drop one of them")
        }
        _ = try augmentationPolicy()
        if let spec = try? Backbones.named(options.backbone) {
            if feature != FeatureSource.defaultOutput, !spec.classifierOutputs.contains(feature) {
                let offered = Backbones.all.filter { !$0.classifierOutputs.isEmpty }
                    .map { "\($0.id): \($0.classifierOutputs.joined(separator: ", "))" }
                throw ValidationError("--feature \(feature): \(spec.id) offers \((["features"] + spec.classifierOutputs).joined(separator: ", ")); "
                                      + "other outputs exist for \(offered.joined(separator: "; "))")
            }
            if let cacheBlocks {
                try BlockCache.validate(spec, blocks: cacheBlocks)
                guard feature == FeatureSource.defaultOutput else {
                    throw ValidationError("--cache-blocks caches what leads to the pooled features; drop --feature \(feature)")
                }
            }
            if FeatureSource(spec: spec, output: feature).needsClassifier, let s = imageSize, s != spec.inputSize {
                throw ValidationError("--feature \(feature) comes after the classifier's first layer, which only takes \(spec.inputSize)x\(spec.inputSize) inputs; drop --image-size")
            }
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: data, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("--data \(data) is not a folder")
        }
    }

    /// `--policy FILE`, or the standard six augmentations.
    private func augmentationPolicy() throws -> AugmentationPolicy {
        guard let policy else { return .standard }
        do {
            return try AugmentationPolicy.fromJSON(Data(contentsOf: URL(fileURLWithPath: policy)))
        } catch let error as ImagingError {
            throw ValidationError("--policy \(policy): \(error.reason)")
        } catch {
            throw ValidationError("--policy \(policy): cannot read: \(error.localizedDescription)")
        }
    }

    struct Summary: Encodable {
        let store: String, extraction_id: Int64, backbone: String, images: Int, new_features: Int, reused_features: Int
        /// Block inputs added (`--cache-blocks`; 0 without it) and their bytes.
        let new_block_inputs: Int, block_input_bytes: Int
        let failed: Int, codec_warnings: Int, seconds: Double, images_per_second: Double
        /// The precision used (fp32, bf16 or int8; in the extraction's settings, int8 with its calibration), what decided it
        /// (requested, probe, table or rule) and why; the probe's bf16/fp32 speed ratio when it ran.
        let precision: String, precision_source: String, precision_reason: String, bf16_probe_ratio: Double?
        /// `--convolution`, and how many of the backbone's convolutions oneDNN runs as Winograd under it
        /// (not part of the extraction's identity: both algorithms give the same features to ~1e-6).
        let convolution: String, winograd_convolutions: Int
        /// int8 run that calibrated: its features against fp32's on the calibration images (`Int8Check`).
        let int8_check: Int8Check?
    }

    /// How far a new int8 calibration moves the features: the cosine of each calibration image's int8
    /// features to its fp32 features (the same rendered images; the fp32 ones from the calibration's
    /// own pass), lowest and median. A resumed int8 run, reusing a stored calibration, does not check again.
    struct Int8Check: Encodable {
        let images: Int, cosine_min: Double, cosine_median: Double
        /// Below this lowest cosine a run warns: the int8 bar of issue 14 (EfficientNet-Lite0/1/2 on all
        /// 2,400 scenes6 images: 0.9913-0.9938).
        static let warnBelow = 0.99
    }

    func run() throws {
        _ = options.configureThreads()
        try failing { try extract() }
    }

    /// An image the identify step could read: its dataset item, its content hash and its stored row.
    struct Identified {
        var item: DatasetItem
        var record: ImageRecord
    }

    /// The three steps: identify (scan, read, hash, probe) -> plan (what the store lacks) -> extract
    /// (pipeline, engine, store). Failures of single files are recorded by each step and never stop it.
    private func extract() throws {
        let started = Date()
        let source = FeatureSource(spec: try Backbones.named(options.backbone), output: feature)
        let size = imageSize ?? source.spec.inputSize
        let cache = try cacheBlocks.map { try BlockCache(spec: source.spec, blocks: $0, dtype: cacheDType) }   // validate() checked it
        let outputs = [feature] + (cache.map { [$0.output] } ?? [])
        // The backbone loads (and compiles) on one thread and the files are read on another while this
        // one opens the store. tools/bench/extract_e2e.sh --rounds 3, twice for each build, alternating
        // (Lite0, fp32, scenes6's 2,400 images, 2-core AMD EPYC, load 0.4-2.1): end to end 334.0 and
        // 338.7 img/s with these steps one after another, 341.2 and 340.0 img/s overlapped (medians;
        // ratio to forward-only 0.851 and 0.887 before, 0.864 and 0.864 after).
        let preparation = prepare(source, size: size, outputs: outputs)
        defer { _ = preparation.take() }   // never leave (nor exit) while the other thread is still in the engine
        let root = URL(fileURLWithPath: data).standardizedFileURL
        let stop = StopFlag()
        let files = BackgroundTask { Result { try survey(root, stop: stop) } }   // reads the files while the store opens
        defer { stop.raise(); _ = files.take() }   // a store error stops the survey at the next file
        let db = try FeatureStore(path: store, mode: .create)
        let failures = FailureLog(db: db, quiet: quiet)

        let identified = try identify(root: root, survey: files.take()!.get(), db: db, failures: failures)
        let ids = try db.upsertImages(identified.map(\.record))
        let images = zip(identified, ids).map { ($0.item, $0.record.sha256, $1) }

        let policyValue = try augmentationPolicy()
        func settings(_ b: LoadedBackbone, _ precision: String, _ featureDim: Int) -> ExtractionSettings {
            ExtractionSettings(
                datasetID: failures.datasetID, backbone: source.storedName, weightsSHA256: b.weightsSHA256,
                weightsSource: b.weightsSource, preprocessing: b.preprocessing.description,
                augmentationPolicy: policyValue.canonicalJSON, imageSize: size, fit: fit.rawValue,
                precision: precision, featureDType: dtype, featureDim: featureDim,
                toolVersion: toolVersion, seed: Int64(bitPattern: seed))
        }
        let extractor: FeatureExtractor, decision: PrecisionDecision
        var calibration: Int8Calibration?, int8Check: Int8Check?
        do {   // scoped so the loaded weights are freed once compiled (the extractor keeps the backbone without them)
            let prepared = preparation.take()!
            let full = try prepared.backbone.get()
            decision = try autoRule(db: db) { settings(full, $0, $1) } ?? PrecisionDecision.resolve(precision) {
                full.winogradShare(batch: batch, size: size, outputs: outputs, algorithm: convolution)
            }
            decision.announce(quiet: quiet)
            var calibrated: (pixels: [UInt8], count: Int, fp32: [Float])?
            if decision.precision == .int8 {
                if let stored = try storedCalibration(db: db, settings: { settings(full, $0, $1) }) {
                    calibration = stored
                } else {
                    let c = try calibrate(full, items: images.map(\.0), size: size)
                    calibration = c.calibration
                    calibrated = (c.pixels, c.count, c.fp32)
                }
            }
            if let compiled = prepared.compiled, compiled.precision == decision.precision, calibration == nil {
                extractor = try compiled.extractor.get()
            } else {
                extractor = try FeatureExtractor(full, batch: batch, size: size, precision: decision.precision, calibration: calibration,
                                                 outputs: outputs, algorithm: convolution)
            }
            if let calibrated {
                let checkStarted = Date()
                int8Check = try Self.checkInt8(extractor, against: calibrated.fp32, pixels: calibrated.pixels, count: calibrated.count,
                                               output: feature, size: size)
                reportInt8Check(int8Check!, seconds: Date().timeIntervalSince(checkStarted))
            }
        }
        let loaded = extractor.backbone
        let storedPrecision = calibration?.storedPrecision ?? decision.precision.rawValue
        let extraction = try db.extraction(for: settings(loaded, storedPrecision, extractor.dimension(feature)))

        // Plan: the copies each image still lacks in this extraction: its features, or (--cache-blocks)
        // its block input. A copy lacking only the latter is recomputed; only what is missing is stored.
        let existing = try db.existingFeatureKeys(extractionID: extraction.id)
        var cached = Set<FeatureKey>()
        if let cache {
            try db.saveBlockDefinition(extractionID: extraction.id, try cache.definition(
                dimension: extractor.dimension(cache.output), backbone: loaded))
            if let stored = try db.blockDefinition(extractionID: extraction.id, blocks: cache.blocks), stored.dtype != cache.dtype {
                throw ValidationError("\(store): extraction \(extraction.id) already caches its last \(cache.blocks) block(s) as \(stored.dtype.rawValue); "
                                      + "pass --cache-dtype \(stored.dtype.rawValue), or use another --store for \(cache.dtype.rawValue)")
            }
            cached = try db.existingBlockInputKeys(extractionID: extraction.id, blocks: cache.blocks)
        }
        let wanted = Array(0...augment)
        var missing: [[Int]] = []
        var reused = 0, blockInputs = 0
        for (_, _, id) in images {
            let keys = wanted.map { FeatureKey(imageID: id, augIndex: $0) }
            let lacksBlock = keys.map { cache != nil && !cached.contains($0) }
            let copies = wanted.indices.filter { !existing.contains(keys[$0]) || lacksBlock[$0] }.map { wanted[$0] }
            reused += keys.filter { existing.contains($0) }.count
            blockInputs += lacksBlock.filter { $0 }.count
            missing.append(copies)
        }
        if !extractor.fp32InBF16Layers.isEmpty,   // what tool 0.1.0 ran in bf16
           let warning = Self.olderBF16Warning(extraction, reused: reused, new: missing.reduce(0) { $0 + $1.count }, store: store) {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        let blockBytes = cache.map { blockInputs * extractor.dimension($0.output) * $0.dtype.bytesPerValue } ?? 0
        if blockBytes > 2_000_000_000 {
            FileHandle.standardError.write(Data(String(format: "--cache-blocks: this run writes %.1f GB of block inputs (%d copies x %d bytes) into %@\n",
                                                       Double(blockBytes) / 1e9, blockInputs, blockBytes / max(1, blockInputs), store).utf8))
        }

        // Extract: the pipeline renders what is missing, the engine computes it, the store keeps it.
        var plan = missing.makeIterator()   // copiesFor is called once per item, in order
        let pipeline = try ImagePipeline(
            items: images.map(\.0), size: size, fit: fit, policy: policyValue,
            copiesFor: { _ in plan.next()! }, seed: seed, batchSize: batch,
            threads: ProcessInfo.processInfo.activeProcessorCount, maxPixels: maxPixels,
            prefetchBatches: ImagePipeline.batchesAhead(memory: ImagePipeline.extractionPrefetchMemory, batchSize: batch, size: size))
        pipeline.knownHashes = images.map(\.1)
        let written = try run(pipeline: pipeline, imageIDs: images.map(\.2), extractor: extractor,
                              extractionID: extraction.id, db: db, failures: failures, cache: cache)
        try db.finishExtraction(extraction.id)
        let warnings = ImageCodec.takeWarnings()
        if let first = warnings.first, !quiet {
            FileHandle.standardError.write(Data("\(warnings.count) image(s) decoded with codec warnings and kept, e.g. \(first.path): \(first.reason)\n".utf8))
        }

        let seconds = Date().timeIntervalSince(started)
        let summary = Summary(store: store, extraction_id: extraction.id, backbone: source.storedName, images: images.count,
                              new_features: written.features, reused_features: reused,
                              new_block_inputs: written.blockInputs,
                              block_input_bytes: cache.map { written.blockInputs * extractor.dimension($0.output) * $0.dtype.bytesPerValue } ?? 0,
                              failed: failures.count,
                              codec_warnings: warnings.count, seconds: seconds, images_per_second: written.rate,
                              precision: decision.precision.rawValue, precision_source: decision.source.rawValue,
                              precision_reason: decision.reason, bf16_probe_ratio: decision.probeRatio,
                              convolution: convolution.rawValue,
                              winograd_convolutions: extractor.winogradConvolutions, int8_check: int8Check)
        if json {
            try printJSON(summary)
        } else if !quiet {
            print(String(format: "%@: %d new features, %d reused, %d failed, %.1f s (extraction %lld in %@)",
                         source.storedName, written.features, reused, failures.count, seconds, extraction.id, store))
            if let cache { print("\(written.blockInputs) new inputs of the last \(cache.blocks) block(s) cached") }
        }
    }

    /// The backbone as loaded (and, when compiled ahead, compiled) on another thread; each error is
    /// thrown by `extract()` where it would meet it without the thread (load errors at the load,
    /// compile errors at the compile).
    struct PreparedBackbone {
        var backbone: Result<LoadedBackbone, Error>
        var compiled: (precision: Precision, extractor: Result<FeatureExtractor, Error>)?
    }

    /// Starts loading the backbone's weights on its own thread, so the load overlaps opening the
    /// store and identifying the images. A requested --precision fp32 or bf16 is also compiled there:
    /// nothing the store or the images hold can change it. auto (which may read the store or run the
    /// probe, whose timing must have the cores to itself) and int8 (calibrated on the run's images)
    /// compile after identify, as before.
    private func prepare(_ source: FeatureSource, size: Int, outputs: [String]) -> BackgroundTask<PreparedBackbone> {
        let weights = options.weightsURL, batch = batch, convolution = convolution
        let ahead: Precision? = precision == .fp32 ? .fp32 : precision == .bf16 ? .bf16 : nil
        return BackgroundTask {
            let backbone = Result { try source.load(weights: weights) }
            guard let ahead, case .success(let full) = backbone else { return PreparedBackbone(backbone: backbone) }
            return PreparedBackbone(backbone: backbone, compiled: (ahead, Result {
                try FeatureExtractor(full, batch: batch, size: size, precision: ahead, outputs: outputs, algorithm: convolution)
            }))
        }
    }

    /// `--precision auto`'s rules before any measurement: the precision of the one extraction in the
    /// store whose settings equal these but for precision, so a store made at another precision (or by
    /// an earlier default, or before adding --cache-blocks) is resumed, not extracted again; else with
    /// --cache-blocks fp32, so the stored features match what fine-tuning recomputes (in fp32) from
    /// the cached block inputs.
    private func autoRule(db: FeatureStore, settings: (String, Int) -> ExtractionSettings) throws -> PrecisionDecision? {
        guard precision == .auto else { return nil }
        let mine = settings("", 0)
        let resumable = try db.extractions(backbone: mine.backbone, datasetID: mine.datasetID).filter {
            try FeatureStore.settingsKey(settings($0.settings.precision, $0.settings.featureDim)) == $0.settingsKey
        }
        // A bf16 extraction is resumed only where oneDNN has bf16 convolutions (else auto is fp32, a new extraction).
        if resumable.count == 1, let e = resumable.first, let p = Precision(rawValue: e.settings.precision), p != .int8,
           p != .bf16 || EngineISA.current.bf16Convolutions {
            return PrecisionDecision(precision: p, source: .rule, probeRatio: nil, reason: "resumes extraction \(e.id) in \(store)")
        }
        guard cacheBlocks == nil else {
            return PrecisionDecision(precision: .fp32, source: .rule, probeRatio: nil,
                                     reason: "--cache-blocks: fine-tuning recomputes the cached blocks in fp32")
        }
        return nil
    }

    /// What a run says when it adds features to a bf16 extraction that tool 0.1.0 started: that build
    /// ran every convolution in bf16, this one keeps the image's convolution, the depthwise one
    /// reading it and the 1 x 1 one after that in fp32 (`Builder.staysFP32InBF16`), so the
    /// extraction's features would mix two computations (on scenes6, Lite2's lowest cosine to fp32
    /// went from 0.9598 to 0.9937). The caller asks only for networks with such convolutions
    /// (EfficientNet-Lite; not B0, ResNet or VGG16). Nil when nothing mixes.
    static func olderBF16Warning(_ extraction: ExtractionRecord, reused: Int, new: Int, store: String) -> String? {
        guard extraction.settings.precision == Precision.bf16.rawValue, extraction.settings.toolVersion == "0.1.0",
              reused > 0, new > 0 else { return nil }
        return "warning: extraction \(extraction.id) in \(store) was started by tool 0.1.0, whose bf16 ran the image's "
            + "convolution and the two after it in bf16 (EfficientNet-Lite on scenes6: cosine to fp32 down to 0.96); "
            + "this run adds \(new) feature rows computed with them in fp32 (down to 0.994) beside its \(reused). "
            + "For uniform features, extract into a new --store"
    }

    /// The calibration of the latest int8 extraction in the store whose settings equal these but for
    /// the calibration, and whose depthwise choice is this run's: a resumed int8 run computes with the
    /// same scales, so its features join the stored ones. Nil when there is none.
    private func storedCalibration(db: FeatureStore, settings: (String, Int) -> ExtractionSettings) throws -> Int8Calibration? {
        let mine = settings("", 0)
        return try db.extractions(backbone: mine.backbone, datasetID: mine.datasetID).reversed().lazy.compactMap { e -> Int8Calibration? in
            guard let c = Int8Calibration(storedPrecision: e.settings.precision), (c.depthwise == true) == int8Depthwise,
                  try FeatureStore.settingsKey(settings(e.settings.precision, e.settings.featureDim)) == e.settingsKey else { return nil }
            let isa = EngineISA.current
            guard c.weights.runs(on: isa) else {
                if !quiet {
                    FileHandle.standardError.write(Data(("int8: extraction \(e.id)'s calibration rounds weights to 8 bits, whose sums oneDNN's "
                        + "int8 kernels here (\(isa.name), no VNNI) would saturate; calibrating again for them (a new extraction)\n").utf8))
                }
                return nil
            }
            if !quiet { FileHandle.standardError.write(Data("int8: the calibration of extraction \(e.id) (\(c.images) images)\n".utf8)) }
            return c
        }.first
    }

    /// Calibrates int8 on `Int8Calibration.defaultImages` images spread evenly over the run's images
    /// (item i * n / k in scan order: a dataset in class folders gets every class, where the first k
    /// would all be of one), un-augmented, rendered as the extraction renders them; unreadable ones are
    /// left out.
    /// Also returns the rendered images and their fp32 features (`feature`), from the calibration's own pass.
    private func calibrate(_ backbone: LoadedBackbone, items: [DatasetItem], size: Int) throws
        -> (calibration: Int8Calibration, pixels: [UInt8], count: Int, fp32: [Float]) {
        let k = min(Int8Calibration.defaultImages, items.count)
        let chosen = (0..<k).map { items[$0 * items.count / k] }
        let pipeline = try ImagePipeline(items: chosen, size: size, fit: fit,
                                         policy: .standard, copiesFor: { _ in [0] }, seed: seed, batchSize: batch,
                                         threads: ProcessInfo.processInfo.activeProcessorCount, maxPixels: maxPixels)
        pipeline.maxFileBytes = maxFileBytes
        var pixels: [UInt8] = [], count = 0
        try pipeline.run({ b in
            pixels += b.pixels.prefix(b.count * size * size * 3)
            count += b.count
        }, onSkip: { _ in })
        guard count > 0 else { throw ValidationError("--precision int8: none of the \(k) images chosen to calibrate on could be read") }
        if !quiet { FileHandle.standardError.write(Data("int8: calibrating on \(count) images spread over the dataset\n".utf8)) }
        let c = try pixels.withUnsafeBufferPointer {
            try backbone.calibrateInt8Keeping(rgb: $0.baseAddress!, count: count, size: size, outputs: [feature], depthwise: int8Depthwise)
        }
        return (c.calibration, pixels, count, c.fp32)
    }

    /// `Int8Check` of `int8` on `count` rendered images (`pixels`), for `output`, against their fp32
    /// features (`fp32`: count x the output's size, from the calibration's pass).
    static func checkInt8(_ int8: FeatureExtractor, against fp32: [Float], pixels: [UInt8], count: Int,
                          output: String, size: Int) throws -> Int8Check {
        let per = size * size * 3
        func features(_ ex: FeatureExtractor) throws -> [Float] {
            var all: [Float] = []
            for start in stride(from: 0, to: count, by: ex.batch) {
                let n = min(ex.batch, count - start)
                let out = try pixels.withUnsafeBufferPointer { try ex.run(rgb: $0.baseAddress! + start * per, count: n) }
                guard let f = out[output] else { throw ValidationError("int8 check: the network has no output \(output)") }
                all += f   // n rows
            }
            return all
        }
        let a = try features(int8), b = fp32, d = int8.dimension(output)
        guard a.count == count * d, b.count == count * d else {
            throw ValidationError("int8 check: \(a.count) int8 and \(b.count) fp32 values for \(count) images of \(d)")
        }
        let cosines = (0..<count).map { i -> Double in
            var ab = 0.0, aa = 0.0, bb = 0.0
            for j in i * d ..< (i + 1) * d { ab += Double(a[j]) * Double(b[j]); aa += Double(a[j] * a[j]); bb += Double(b[j] * b[j]) }
            return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : (aa == bb ? 1 : 0)
        }.sorted()
        let median = count % 2 == 1 ? cosines[count / 2] : (cosines[count / 2 - 1] + cosines[count / 2]) / 2
        return Int8Check(images: count, cosine_min: cosines[0], cosine_median: median)
    }

    /// Says what `check` measured (unless --quiet), and warns (always) when the lowest cosine is below
    /// `Int8Check.warnBelow`.
    private func reportInt8Check(_ check: Int8Check, seconds: Double) {
        if !quiet {
            FileHandle.standardError.write(Data(String(format: "int8: on the %d calibration images, cosine of int8 to fp32 features: lowest %.4f, median %.4f (checked in %.2f s)\n",
                                                       check.images, check.cosine_min, check.cosine_median, seconds).utf8))
        }
        if check.cosine_min < Int8Check.warnBelow {
            FileHandle.standardError.write(Data(String(format: "warning: --precision int8 moves this backbone's features more than on EfficientNet-Lite: lowest cosine to fp32 %.4f on the calibration images (Lite0/1/2 on scenes6: >= 0.991). Compare heads trained on both (tools/bench/int8_quality.sh does it for a dataset), or use --precision fp32\n",
                                                       check.cosine_min).utf8))
        }
    }

    /// What identify learns from the files alone, before the store is open: the scan, the items of
    /// this shard and, for each, its content hash, path under the root and stored size, or why it
    /// cannot be used.
    struct Survey {
        struct Facts { let sha256: String, relativePath: String, width: Int, height: Int }
        let scan: DatasetScan
        let items: [DatasetItem]
        let outcomes: [Result<Facts, FileFailure>]
    }

    /// Scans the folder, then reads, hashes and probes the header of every image (on all cores, in
    /// chunks), before any decoding. Touches no store: it runs while the store opens.
    private func survey(_ root: URL, stop: StopFlag) throws -> Survey {
        let scan = try DatasetScan.scan(root, unlabeled: unlabeled)
        var items = scan.items
        if let shard { items = try Shard(shard).select(items, root: root) }
        let maxFileBytes = maxFileBytes, maxPixels = maxPixels
        return Survey(scan: scan, items: items, outcomes: concurrentMap(items) { item in
            if stop.isRaised { return .failure(FileFailure(path: item.path.path, reason: "not read: the run stopped")) }
            do {
                let bytes = try ImageCodec.readFile(item, maxBytes: maxFileBytes)
                let header = try ImageCodec.probe(data: Data(bytes), name: item.path.path)
                guard header.width * header.height <= maxPixels else {
                    throw ImagingError.invalidArgument("\(header.width)x\(header.height) pixels is above --max-pixels \(maxPixels)")
                }
                let relative = String(item.path.standardizedFileURL.path.dropFirst(root.path.count + 1))
                return .success(Survey.Facts(sha256: ContentHash.sha256Hex(bytes), relativePath: relative, width: header.width, height: header.height))
            } catch {
                return .failure(FileFailure(path: item.path.path, reason: (error as? ImagingError)?.reason ?? "\(error)"))
            }
        })
    }

    /// Identify: the survey's images as the store's rows, so what the store has is never recomputed.
    /// Files that cannot be read or whose header is bad (empty, not an image, zero or absurd
    /// dimensions, too large) are recorded as failures, in scan order.
    private func identify(root: URL, survey: Survey, db: FeatureStore, failures: FailureLog) throws -> [Identified] {
        let scan = survey.scan
        let dataset = try db.dataset(root: root.path, classes: scan.classes, name: root.lastPathComponent)
        // The store's class list is authoritative: a class folder added later appends, never shifts labels.
        let classIndex = Dictionary(uniqueKeysWithValues: dataset.classes.enumerated().map { ($1, $0) })
        failures.datasetID = dataset.id
        for p in scan.problems {
            try failures.record(path: p.path, reason: p.reason)
        }
        var identified: [Identified] = []
        for (item, outcome) in zip(survey.items, survey.outcomes) {
            switch outcome {
            case .success(let facts):
                identified.append(Identified(item: item, record: ImageRecord(
                    datasetID: dataset.id, sha256: facts.sha256, path: facts.relativePath,
                    classIndex: classIndex[item.className] ?? item.classIndex,
                    split: ImageSplit(rawValue: item.split ?? "train") ?? .train, width: facts.width, height: facts.height)))
            case .failure(let failure):
                try failures.record(path: failure.path, reason: failure.reason)
            }
        }
        guard !identified.isEmpty else {
            throw ValidationError("\(root.path): no usable image (\(failures.count) skipped); nothing to extract")
        }
        return try audit(identified, classes: dataset.classes, db: db, datasetID: dataset.id)
    }

    /// Byte-identical files: every file is recorded (for `extract store audit`); each image is kept once,
    /// labelled by the conflict policy, and as test when any of its files is a test file.
    private func audit(_ files: [Identified], classes: [String], db: FeatureStore, datasetID: Int64) throws -> [Identified] {
        try db.recordImageFiles(files.map {
            ImageFileRecord(datasetID: datasetID, path: $0.record.path, sha256: $0.record.sha256,
                            classIndex: $0.record.classIndex, split: $0.record.split)
        })
        try db.setConflictPolicy(datasetID: datasetID, conflicts.rawValue)
        let report = DatasetAudit(files.map {
            DatasetAudit.File(path: $0.record.path, sha256: $0.record.sha256,
                              className: classes.indices.contains($0.record.classIndex) ? classes[$0.record.classIndex] : "",
                              split: $0.record.split.rawValue)
        })
        if let line = report.summary, !quiet { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
        var bySHA: [String: [Identified]] = [:]
        for f in files { bySHA[f.record.sha256, default: []].append(f) }
        var kept: [Identified] = []
        var seen = Set<String>()
        for f in files where seen.insert(f.record.sha256).inserted {
            // Unlabeled files only count when no file gives the image a class.
            let all = bySHA[f.record.sha256]!.sorted { $0.record.path < $1.record.path }
            let labeled = all.filter { $0.record.split != .unlabeled }
            let group = labeled.isEmpty ? all : labeled
            var chosen = group[0]
            let labels = Set(group.map(\.record.classIndex))
            if labels.count > 1 {
                switch conflicts {
                case .drop:
                    let names = labels.sorted().map { classes[$0] }.joined(separator: ", ")
                    chosen.record.exclusion = "label conflict: the same bytes are under \(names) (\(group.map(\.record.path).joined(separator: ", ")))"
                case .keepFirst: break
                case .keepLast: chosen = group[group.count - 1]
                }
            }
            if group.contains(where: { $0.record.split == .test }) { chosen.record.split = .test }
            kept.append(chosen)
        }
        return kept
    }

    /// Runs the pipeline over the planned copies, the engine over each batch, and commits each batch.
    private func run(pipeline: ImagePipeline, imageIDs: [Int64], extractor: FeatureExtractor, extractionID: Int64,
                     db: FeatureStore, failures: FailureLog, cache: BlockCache?) throws -> (features: Int, blockInputs: Int, rate: Double) {
        pipeline.maxFileBytes = maxFileBytes
        // Decoding never competes with the forward pass's threads (a pre-empted oneDNN thread stalls
        // its partner at the next barrier): workers take idle cycles, and the consumer decodes too
        // whenever it would otherwise wait. tools/bench/extract_e2e.sh measures the result (end to
        // end against forward-only); one-off timers around the phases on scenes6 with Lite0 showed
        // the forward pass itself 12-15% slower with one normal-priority decoding worker instead.
        pipeline.idlePriority = true
        let progress = Progress(total: pipeline.plannedImages, label: "\(extractor.backbone.spec.id)", quiet: quiet)
        // Each batch is committed on a thread of its own while the engine computes the next
        // (`BatchWriter`); a store error stops the run at the next batch, as it did inline.
        let writer = BatchWriter()
        defer { _ = try? writer.finish() }   // never leave while it still writes
        try pipeline.run({ b in
            let outputs = try extractor.run(rgb: b.pixels, count: b.count)
            func rows(_ output: String) -> [FeatureRow] {
                let values = outputs[output]!, dim = extractor.dimension(output)
                return b.entries.enumerated().map { i, e in
                    FeatureRow(imageID: imageIDs[e.itemIndex], augIndex: e.copy, values: Array(values[i * dim ..< (i + 1) * dim]))
                }
            }
            let features = rows(feature), inputs = cache.map { BlockInputRows(blocks: $0.blocks, rows: rows($0.output)) }
            try writer.submit { try db.insertFeatures(extractionID: extractionID, rows: features, blockInputs: inputs) }
            progress.advance(by: b.count)
        }, onSkip: { skip in
            try? failures.record(path: skip.path, reason: skip.reason, extractionID: extractionID)
            progress.advance(by: 0, skipped: 1)
        })
        let written = try writer.finish()
        progress.finish()
        return (written.features, written.blockInputs, progress.rate)
    }
}

/// Files left out of a run: recorded in the store (with the dataset, and the extraction once there is
/// one), shown on stderr unless quiet, and counted for the summary.
final class FailureLog {
    let db: FeatureStore
    let quiet: Bool
    var datasetID: Int64 = 0
    private(set) var count = 0

    init(db: FeatureStore, quiet: Bool) {
        self.db = db
        self.quiet = quiet
    }

    func record(path: String, reason: String, extractionID: Int64? = nil) throws {
        count += 1
        try db.recordFailure(datasetID: datasetID, extractionID: extractionID, path: path, reason: reason)
        if !quiet { FileHandle.standardError.write(Data("skipped \(path): \(reason)\n".utf8)) }
    }
}

/// A file identify could not use, and why.
struct FileFailure: Error {
    let path: String, reason: String
}

/// `transform` of every element, in order, computed on all cores in contiguous chunks.
func concurrentMap<T, R>(_ items: [T], _ transform: (T) -> R) -> [R] {
    let parts = min(items.count, 8 * ProcessInfo.processInfo.activeProcessorCount)
    return [R](unsafeUninitializedCapacity: items.count) { buffer, initialized in
        let base = buffer.baseAddress
        DispatchQueue.concurrentPerform(iterations: parts) { k in
            for i in items.count * k / parts ..< items.count * (k + 1) / parts { (base! + i).initialize(to: transform(items[i])) }
        }
        initialized = items.count
    }
}

/// Work started on a thread of its own; `take()` waits for it and hands its result over once (nil after).
final class BackgroundTask<T> {
    private let finished = DispatchGroup()
    private var result: T?

    init(_ work: @escaping () -> T) {
        finished.enter()
        let thread = Thread { [self] in
            result = work()
            finished.leave()
        }
        thread.stackSize = 8 << 20   // as the main thread's: weights files are parsed there
        thread.start()
    }

    func take() -> T? {
        finished.wait()
        defer { result = nil }
        return result
    }
}

/// Runs store writes one after another on a serial queue, in the order submitted, and sums the
/// rows each added. At most `limit` are submitted and not yet written; `submit` waits for room. The
/// first error drops what is still queued, and `submit` and `finish` throw it. Inline, the inserts
/// held the engine idle between forward passes; `tools/bench/extract_e2e.sh` measures the whole run
/// against forward-only.
final class BatchWriter {
    typealias Work = () throws -> (features: Int, blockInputs: Int)
    private let queue = DispatchQueue(label: "store-writer")
    private let room: DispatchSemaphore
    private let lock = NSLock()
    private var failure: Error?
    private var added = (features: 0, blockInputs: 0)

    init(limit: Int = 4) { room = DispatchSemaphore(value: limit) }

    private var firstError: Error? { lock.withLock { failure } }

    /// Queues `work`; throws the writer's first error instead once there is one.
    func submit(_ work: @escaping Work) throws {
        room.wait()
        if let failure = firstError { room.signal(); throw failure }
        queue.async { [self] in
            defer { room.signal() }
            guard firstError == nil else { return }
            do {
                let a = try work()
                lock.withLock { added = (added.features + a.features, added.blockInputs + a.blockInputs) }
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
    }

    /// Waits for everything queued to be written; the rows added, or the first error. Idempotent.
    @discardableResult
    func finish() throws -> (features: Int, blockInputs: Int) {
        queue.sync {}
        if let failure = firstError { throw failure }
        return lock.withLock { added }
    }
}

/// Raised by one thread, read by others: asks work in progress to stop early.
final class StopFlag {
    private let lock = NSLock()
    private var raised = false

    func raise() {
        lock.lock()
        raised = true
        lock.unlock()
    }

    var isRaised: Bool {
        lock.lock()
        defer { lock.unlock() }
        return raised
    }
}

/// Recorded with every extraction (provenance only: a new version resumes an old extraction).
/// 0.2.0 (ninth session): bf16 runs the image's convolution and the two after it in fp32
/// (`olderBF16Warning`).
let toolVersion = "0.2.0"

extension FeatureDType: ExpressibleByArgument {}
extension ConflictPolicy: ExpressibleByArgument {}
