import CImageCodec
import Foundation

/// Decodes, augments and batches images on worker threads while the caller consumes earlier batches.
///
/// - Work unit: one item (its file is read, hashed and decoded once, then all its copies are rendered).
/// - Order: batches hold copies in item order, then copy order, whatever the thread count; a skipped
///   item simply contributes nothing. Every batch has `batchSize` images except possibly the last.
/// - Memory: workers may only run ahead of the consumer by `prefetchBatches * batchSize` images
///   (plus one item per worker), so memory stays bounded on any dataset size.
/// - Bad files: reported once through `onSkip` (on the caller's thread, in item order) and counted;
///   the run goes on.
/// - `consume` and `onSkip` run on the thread that called `run`, so the consumer (the backbone's
///   forward pass) needs no locking. If either throws, workers stop and the error is rethrown.
public final class ImagePipeline {
    /// One image of a batch.
    public struct Entry: Hashable, Sendable {
        public let item: DatasetItem
        /// Position of the item in the `items` array given to the pipeline.
        public let itemIndex: Int
        /// 0 = the plain image; 1... = augmented copies.
        public let copy: Int
        /// SHA-256 (hex) of the file's bytes.
        public let sha256: String
        /// Size of the decoded source image (after EXIF orientation).
        public let sourceWidth: Int
        public let sourceHeight: Int
    }

    /// A batch of `count` size x size RGB images, contiguous HWC uint8 (image i starts at i*size*size*3).
    public struct Batch {
        public let size: Int
        public let entries: [Entry]
        public var pixels: [UInt8]
        public var count: Int { entries.count }

        public func image(at index: Int) -> RGBImage {
            let n = size * size * 3
            return RGBImage(width: size, height: size, pixels: Array(pixels[(index * n)..<((index + 1) * n)]))
        }
    }

    /// Counts of a finished run.
    public struct Statistics: Sendable {
        public var items = 0
        public var images = 0
        public var batches = 0
        public var skipped = 0
        public var seconds = 0.0
    }

    public let items: [DatasetItem]
    public let size: Int
    public let fit: Fit
    public let policy: AugmentationPolicy
    public let seed: UInt64
    public let batchSize: Int
    public let threads: Int
    public let maxPixels: Int
    public let prefetchBatches: Int
    /// Run the workers at idle CPU priority (Linux `SCHED_IDLE`): they then only use cycles nothing
    /// else wants. For a consumer that keeps every core busy (a multithreaded forward pass), decoding
    /// no longer pre-empts one of its threads (which stalls the others at the next barrier); it runs
    /// when the consumer is between batches, and the consumer, instead of waiting for an image,
    /// renders the next unclaimed item itself (so starved workers never stall the run).
    public var idlePriority = false
    /// Files above this many bytes are refused before reading (`ImageCodec.readFile`).
    public var maxFileBytes = ImageCodec.maxFileBytes
    /// SHA-256 (hex) of each item's bytes when the caller already has them (parallel to `items`): the
    /// file is then not hashed a second time.
    public var knownHashes: [String]?
    private let copyLists: [[Int]]
    /// start[i] = number of images produced by items before i (before skips); start[n] = total.
    private let start: [Int]

    /// What `extract` lets its pipeline hold ahead of the engine: 64 MiB of rendered images (26
    /// batches of 16 at 224x224). The workers run at idle priority, in the cycles the forward pass
    /// leaves (its threads sleeping at barriers); the further ahead they may run, the more of those
    /// cycles they use instead of stopping at the limit. Lite0 fp32 on scenes6, 4 alternating runs
    /// each (2-core AMD EPYC Zen 5; a build reading the count from an environment variable, not
    /// kept), median wall time of `extract`: 7.46 s with 2 batches, 7.44 s with 8, 7.35 s with 32.
    /// `tools/bench/extract_e2e.sh` measures the committed rule (README). The cost is memory: that
    /// run's peak resident set went from 250 to 314 MB (`/usr/bin/time -f %M extract ...`, one run
    /// each of the builds before and after).
    public static let extractionPrefetchMemory = 64 << 20

    /// The `prefetchBatches` that hold at most `memory` bytes of rendered `size` x `size` RGB images
    /// in batches of `batchSize`, at least 2.
    public static func batchesAhead(memory: Int, batchSize: Int, size: Int) -> Int {
        max(2, memory / max(1, batchSize * size * size * 3))
    }

    /// `copies` = K renders copies 0..<K of every item (copy 0 is the plain image).
    public convenience init(items: [DatasetItem], size: Int = 224, fit: Fit = .pad, policy: AugmentationPolicy = .none,
                            copies: Int = 1, seed: UInt64 = 0, batchSize: Int = 32,
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                            maxPixels: Int = ImageCodec.defaultMaxPixels, prefetchBatches: Int = 2) throws {
        guard copies >= 1 else { throw ImagingError.invalidArgument("copies must be >= 1 (got \(copies))") }
        try self.init(items: items, size: size, fit: fit, policy: policy, copiesFor: { _ in Array(0..<copies) },
                      seed: seed, batchSize: batchSize, threads: threads, maxPixels: maxPixels,
                      prefetchBatches: prefetchBatches)
    }

    /// `copiesFor` chooses the copy indices per item (e.g. [0] for test items, [0...7] for training ones,
    /// or only the copies missing from the feature store). Called once per item at init.
    public init(items: [DatasetItem], size: Int = 224, fit: Fit = .pad, policy: AugmentationPolicy = .none,
                copiesFor: (DatasetItem) -> [Int], seed: UInt64 = 0, batchSize: Int = 32,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                maxPixels: Int = ImageCodec.defaultMaxPixels, prefetchBatches: Int = 2) throws {
        guard size > 0, size <= 16384 else { throw ImagingError.invalidArgument("size must be 1...16384 (got \(size))") }
        guard batchSize > 0 else { throw ImagingError.invalidArgument("batchSize must be > 0 (got \(batchSize))") }
        guard threads > 0 else { throw ImagingError.invalidArgument("threads must be > 0 (got \(threads))") }
        guard maxPixels > 0 else { throw ImagingError.invalidArgument("maxPixels must be > 0 (got \(maxPixels))") }
        try policy.validate()
        self.items = items
        self.size = size
        self.fit = fit
        self.policy = policy
        self.seed = seed
        self.batchSize = batchSize
        self.threads = threads
        self.maxPixels = maxPixels
        self.prefetchBatches = max(1, prefetchBatches)
        var lists: [[Int]] = []
        var start = [0]
        for item in items {
            let copies = copiesFor(item)
            guard copies.allSatisfy({ $0 >= 0 }) else { throw ImagingError.invalidArgument("copy indices must be >= 0 (\(item.path.path))") }
            lists.append(copies)
            start.append(start.last! + copies.count)
        }
        copyLists = lists
        self.start = start
    }

    /// Total images the run produces if no file is skipped.
    public var plannedImages: Int { start.last ?? 0 }

    /// What a worker hands back for one item.
    private enum ItemResult {
        case rendered(entries: [Entry], pixels: [UInt8])
        case skipped(SkippedFile)
    }

    /// Shared state between the workers and the consumer, guarded by `condition`.
    private final class State {
        let condition = NSCondition()
        var nextClaim = 0
        var nextConsume = 0
        var results: [Int: ItemResult] = [:]
        var cancelled = false
        var runningWorkers = 0
    }

    /// Runs the pipeline to the end. Returns counts; rethrows the first error of `consume`/`onSkip`.
    @discardableResult
    public func run(_ consume: (Batch) throws -> Void, onSkip: (SkippedFile) -> Void = { _ in }) throws -> Statistics {
        _ = ImageCodec.configureOpenCVOnce
        _ = Self.keepBuffersInTheHeapOnce
        let began = Date()
        let state = State()
        let count = items.count
        let aheadLimit = prefetchBatches * batchSize
        let workerCount = min(threads, max(1, count))

        state.runningWorkers = workerCount
        for w in 0..<workerCount {
            let idle = idlePriority
            let thread = Thread { [self] in
                if idle { Self.lowerCurrentThreadPriority() }
                worker(state: state, count: count, aheadLimit: aheadLimit)
            }
            thread.name = "imaging-\(w)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        defer {
            state.condition.lock()
            state.cancelled = true
            state.condition.broadcast()
            while state.runningWorkers > 0 { state.condition.wait() }
            state.condition.unlock()
        }

        var stats = Statistics()
        stats.items = count
        let imageBytes = size * size * 3
        var entries: [Entry] = []
        var pixels: [UInt8] = []
        entries.reserveCapacity(batchSize)
        pixels.reserveCapacity(batchSize * imageBytes)

        for index in 0..<count {
            state.condition.lock()
            while state.results[index] == nil {
                // Help rather than wait: when the workers are behind (or starved at idle priority by
                // other processes), the consumer renders the next unclaimed item itself.
                if !state.cancelled, state.nextClaim < count, canClaim(state.nextClaim, state: state, aheadLimit: aheadLimit) {
                    processNextClaim(state: state)
                } else {
                    state.condition.wait()
                }
            }
            let result = state.results.removeValue(forKey: index)!
            state.nextConsume = index + 1
            state.condition.broadcast()
            state.condition.unlock()

            switch result {
            case .skipped(let file):
                stats.skipped += 1
                onSkip(file)
            case .rendered(let itemEntries, let itemPixels):
                var offset = 0
                for entry in itemEntries {
                    entries.append(entry)
                    pixels.append(contentsOf: itemPixels[offset..<(offset + imageBytes)])
                    offset += imageBytes
                    if entries.count == batchSize {
                        stats.images += entries.count
                        stats.batches += 1
                        try consume(Batch(size: size, entries: entries, pixels: pixels))
                        entries.removeAll(keepingCapacity: true)
                        pixels.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        if !entries.isEmpty {
            stats.images += entries.count
            stats.batches += 1
            try consume(Batch(size: size, entries: entries, pixels: pixels))
        }
        stats.seconds = Date().timeIntervalSince(began)
        return stats
    }

    /// Whether item `index` may be started now: at most `aheadLimit` images ahead of the consumer,
    /// except that the next item to be consumed is always allowed (a huge item never stalls).
    /// Call with `state.condition` locked.
    private func canClaim(_ index: Int, state: State, aheadLimit: Int) -> Bool {
        index == state.nextConsume || start[index + 1] - start[state.nextConsume] <= aheadLimit
    }

    /// Every image passes through buffers of 100-600 KB (decoded source, rendered copies, the batch).
    /// glibc serves those with mmap/munmap by default, so each one is page-faulted in afresh: with
    /// the threshold raised they are reused from the heap instead. Measured with `extract bench
    /// --pipeline --augment 0` on scenes6: 2,600-2,750 -> 3,300-3,500 images per CPU-second.
    static let keepBuffersInTheHeapOnce: Void = {
        cic_keep_buffers_in_heap()
    }()

    /// Puts the calling thread in the idle scheduling class (no effect where that does not exist).
    private static func lowerCurrentThreadPriority() {
        #if os(Linux)
        var param = sched_param()
        param.sched_priority = 0
        let schedIdle: Int32 = 5   // SCHED_IDLE (linux/sched.h; glibc hides it behind _GNU_SOURCE)
        _ = sched_setscheduler(0, schedIdle, &param)   // best effort: a failure only costs speed
        #endif
    }

    private func worker(state: State, count: Int, aheadLimit: Int) {
        state.condition.lock()
        while !state.cancelled && state.nextClaim < count {
            let index = state.nextClaim
            // Run ahead of the consumer by at most `aheadLimit` images; the next item to be consumed is
            // always allowed, so progress never stalls on a huge item.
            if !canClaim(index, state: state, aheadLimit: aheadLimit) {
                state.condition.wait()
                continue
            }
            processNextClaim(state: state)
        }
        state.runningWorkers -= 1
        state.condition.broadcast()
        state.condition.unlock()
    }

    /// Claims item `state.nextClaim` and renders it outside the lock. Call with `state.condition`
    /// locked; returns with it locked and the result published.
    private func processNextClaim(state: State) {
        let index = state.nextClaim
        state.nextClaim += 1
        state.condition.unlock()
        let result = process(index)
        state.condition.lock()
        state.results[index] = result
        state.condition.broadcast()
    }

    /// Reads, hashes, decodes and renders all copies of one item. Never throws: failures become skips.
    private func process(_ index: Int) -> ItemResult {
        let item = items[index]
        let copies = copyLists[index]
        // Nothing wanted from this item (e.g. every copy already stored): do not even read the file.
        if copies.isEmpty { return .rendered(entries: [], pixels: []) }
        do {
            let bytes = try ImageCodec.readFile(item, maxBytes: maxFileBytes)
            let sha = knownHashes?[index] ?? ContentHash.sha256Hex(bytes)
            let image = try ImageCodec.decode(bytes: bytes, name: item.path.path, maxPixels: maxPixels)
            let prepared = try Geometry.Prepared(image, size: size, fit: fit, policy: policy)
            let imageBytes = size * size * 3
            var pixels = [UInt8](repeating: 0, count: imageBytes * copies.count)
            var entries: [Entry] = []
            entries.reserveCapacity(copies.count)
            try pixels.withUnsafeMutableBufferPointer { out in
                for (k, copy) in copies.enumerated() {
                    let p = AugmentationParameters.draw(policy: policy, contentHash: sha, copy: copy, seed: seed)
                    try prepared.render(p, into: out.baseAddress! + k * imageBytes)
                    entries.append(Entry(item: item, itemIndex: index, copy: copy, sha256: sha,
                                         sourceWidth: image.width, sourceHeight: image.height))
                }
            }
            return .rendered(entries: entries, pixels: pixels)
        } catch let error as ImagingError {
            return .skipped(SkippedFile(path: item.path.path, reason: error.reason))
        } catch {
            return .skipped(SkippedFile(path: item.path.path, reason: "\(error)"))
        }
    }
}

extension ImagingError {
    /// The message without the path (for `SkippedFile`, which carries the path separately).
    public var reason: String {
        switch self {
        case let .unreadable(_, reason): return "cannot read file: \(reason)"
        case let .badImage(_, _, reason): return reason
        case let .badDataset(_, reason): return reason
        case let .writeFailed(_, reason): return "cannot write: \(reason)"
        case .invalidPolicy, .invalidArgument: return description
        }
    }
}
