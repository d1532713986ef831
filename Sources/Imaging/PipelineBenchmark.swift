import Foundation

/// Throughput of the image pipeline alone (read + SHA-256 + decode + augment + resize/pad), with a
/// consumer that does nothing, so the number is the rate the pipeline can feed a backbone.
public enum PipelineBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let imagesPerSecond: Double
        public let images: Int
        public let seconds: Double
        public let threads: Int
        /// CPU time of the whole process during the run (all workers plus the consumer thread).
        public let cpuSeconds: Double
        /// Images per CPU-second: the per-core rate, insensitive to other load on a shared machine.
        public var imagesPerCPUSecond: Double { Double(images) / max(cpuSeconds, 1e-9) }
        public var description: String {
            String(format: "%d images in %.3f s wall (%.0f images/s, %d threads); %.3f CPU-s: %.0f images per CPU-second",
                   images, seconds, imagesPerSecond, threads, cpuSeconds, imagesPerCPUSecond)
        }
    }

    /// Scans `dir` (all splits) and runs the pipeline over every image, rendering `augment` augmented
    /// copies per image (copy indices 1...augment, standard policy), or the plain copy when `augment` is 0.
    public static func run(dir: URL, augment: Int = 1, size: Int = 224, fit: Fit = .pad, threads: Int = 1,
                           batchSize: Int = 32, policy: AugmentationPolicy = .standard,
                           seed: UInt64 = 0) throws -> Result {
        guard augment >= 0 else { throw ImagingError.invalidArgument("augment must be >= 0") }
        let scan = try DatasetScan.scan(dir)
        let copies = augment == 0 ? [0] : Array(1...augment)
        let pipeline = try ImagePipeline(items: scan.items, size: size, fit: fit, policy: augment == 0 ? .none : policy,
                                         copiesFor: { _ in copies }, seed: seed, batchSize: batchSize, threads: threads)
        var checksum = 0
        let cpu0 = processCPUSeconds()
        let stats = try pipeline.run({ batch in checksum &+= Int(batch.pixels[batch.pixels.count / 2]) })
        _ = checksum
        let cpu = processCPUSeconds() - cpu0
        let seconds = max(stats.seconds, 1e-9)
        return Result(imagesPerSecond: Double(stats.images) / seconds, images: stats.images, seconds: seconds,
                      threads: threads, cpuSeconds: cpu)
    }

    /// CPU time consumed by this process so far (user + system, all threads).
    public static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
