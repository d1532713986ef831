import Foundation
import XCTest
import Imaging

final class DatasetTests: XCTestCase {
    func testPredefinedSplitsAreNormalised() throws {
        let dir = try TempDir()
        let jpeg = try Fixtures.bytes("formats/baseline.jpg")
        try dir.write("seg_train/seg_train/sea/1.jpg", jpeg)
        try dir.write("seg_train/seg_train/forest/2.JPG", jpeg)
        try dir.write("seg_train/seg_train/forest/sub/3.jpeg", jpeg)
        try dir.write("seg_test/seg_test/sea/4.jpg", jpeg)
        try dir.write("seg_test/seg_test/street/5.jpg", jpeg)
        try dir.write("seg_pred/seg_pred/6.jpg", jpeg)
        try dir.write("README.md", Array("hi".utf8))
        let scan = try DatasetScan.scan(dir.url)
        XCTAssertEqual(scan.splits, ["train", "test"])
        XCTAssertEqual(scan.classes, ["forest", "sea", "street"])
        XCTAssertEqual(scan.items.map { "\($0.split!)/\($0.className)/\($0.classIndex)/\($0.path.lastPathComponent)" },
                       ["train/forest/0/2.JPG", "train/forest/0/3.jpeg", "train/sea/1/1.jpg", "test/sea/1/4.jpg", "test/street/2/5.jpg"])
        XCTAssertEqual(scan.problems.count, 1)
        XCTAssertTrue(scan.problems[0].reason.contains("not a split folder"))
        XCTAssertEqual(scan.items(inSplit: "test").count, 2)
    }

    /// With `unlabeled: true`, DIR/unlabeled/ (any depth) holds images without a class, listed last;
    /// without it, `unlabeled` is an ordinary class folder.
    func testUnlabeledFolder() throws {
        let dir = try TempDir()
        let jpeg = try Fixtures.bytes("formats/baseline.jpg")
        for name in ["sea/1.jpg", "forest/2.jpg", "unlabeled/b.jpg", "unlabeled/more/a.jpg"] { try dir.write(name, jpeg) }
        let scan = try DatasetScan.scan(dir.url, unlabeled: true)
        XCTAssertEqual(scan.classes, ["forest", "sea"])
        XCTAssertEqual(scan.items.map { "\($0.split ?? "-")/\($0.className)/\($0.classIndex)/\($0.path.lastPathComponent)" },
                       ["-/forest/0/2.jpg", "-/sea/1/1.jpg", "unlabeled//-1/b.jpg", "unlabeled//-1/a.jpg"])
        XCTAssertEqual(try DatasetScan.scan(dir.url).classes, ["forest", "sea", "unlabeled"])

        try dir.write("train/sea/3.jpg", jpeg)
        let split = try DatasetScan.scan(dir.url, unlabeled: true)
        XCTAssertEqual(split.items.filter { $0.split == "unlabeled" }.count, 2)
        XCTAssertEqual(split.items.filter { $0.split == "train" }.map(\.className), ["sea"])

        let none = try TempDir()
        try none.write("sea/1.jpg", jpeg)
        XCTAssertThrowsError(try DatasetScan.scan(none.url, unlabeled: true)) { e in
            XCTAssertTrue("\(e)".contains("DIR/unlabeled/"), "\(e)")
        }
    }

    func testScenes6Layout() throws {
        guard let scenes = Fixtures.scenes6() else { throw XCTSkip("scenes6 not found beside the repository") }
        let scan = try DatasetScan.scan(scenes)
        XCTAssertEqual(scan.classes, ["buildings", "forest", "glacier", "mountain", "sea", "street"])
        XCTAssertEqual(scan.items(inSplit: "train").count, 1800)
        XCTAssertEqual(scan.items(inSplit: "test").count, 600)
        XCTAssertEqual(scan.problems, [])
    }

    func testScenes6PipelineProducesFullBatches() throws {
        guard let scenes = Fixtures.scenes6() else { throw XCTSkip("scenes6 not found beside the repository") }
        let items = Array(try DatasetScan.scan(scenes).items.prefix(40))
        let pipeline = try ImagePipeline(items: items, size: 224, policy: .standard, copies: 2, batchSize: 16, threads: 2)
        var sizes: [Int] = []
        let stats = try pipeline.run({ batch in
            sizes.append(batch.count)
            XCTAssertEqual(batch.entries.first?.sourceWidth, 150)
            XCTAssertEqual(batch.entries.first?.sha256.count, 64)
        })
        XCTAssertEqual(sizes, [16, 16, 16, 16, 16])
        XCTAssertEqual(stats.skipped, 0)
    }

    /// Reports the throughput of decode + one augmentation + pad to 224 (measured, not asserted:
    /// the machine is shared). See PipelineBenchmark for the release-build numbers.
    func testBenchmarkRuns() throws {
        guard let scenes = Fixtures.scenes6() else { throw XCTSkip("scenes6 not found beside the repository") }
        let r = try PipelineBenchmark.run(dir: scenes, augment: 1, size: 224, threads: 1)
        XCTAssertEqual(r.images, 2400)
        print("pipeline benchmark: \(r)")
    }
}

final class BatchAndPreviewTests: XCTestCase {
    /// An error thrown by the consumer stops the workers and comes back out of run.
    func testConsumerErrorStopsTheRun() throws {
        struct Stop: Error {}
        let dir = try TempDir()
        for i in 0..<20 { try dir.write("a/\(i).png", try Fixtures.bytes("inputs/small-street.png")) }
        let pipeline = try ImagePipeline(items: try DatasetScan.scan(dir.url).items, size: 16, copies: 3, batchSize: 2, threads: 3)
        var calls = 0
        XCTAssertThrowsError(try pipeline.run({ _ in calls += 1; if calls == 2 { throw Stop() } })) { XCTAssertTrue($0 is Stop) }
        XCTAssertEqual(calls, 2)
        XCTAssertThrowsError(try ImagePipeline(items: [], size: 0)) { XCTAssertTrue("\($0)".contains("size")) }
    }

    /// Idle-priority workers with a consumer that renders items itself whenever it would wait give
    /// exactly the batches of a plain single-worker run, including when the consumer is slow.
    func testIdlePriorityWorkersAndHelpingConsumerKeepOrder() throws {
        let dir = try TempDir()
        for i in 0..<13 { try dir.write("c\(i % 2)/\(i).png", try Fixtures.bytes("inputs/small-street.png")) }
        try dir.write("c0/bad.png", Array("not a png".utf8))
        let items = try DatasetScan.scan(dir.url).items
        func batches(idle: Bool, slow: Bool) throws -> [[String]] {
            let p = try ImagePipeline(items: items, size: 16, policy: .standard, copies: 2, batchSize: 3, threads: 2)
            p.idlePriority = idle
            var out: [[String]] = []
            try p.run({ b in
                if slow { Thread.sleep(forTimeInterval: 0.002) }
                out.append(b.entries.map { "\($0.item.path.lastPathComponent)#\($0.copy)" } + [String(b.pixels.hashValue)])
            })
            return out
        }
        let reference = try batches(idle: false, slow: false)
        XCTAssertEqual(reference.count, 9)   // 13 good items x 2 copies = 26 images in batches of 3
        XCTAssertEqual(try batches(idle: true, slow: false), reference)
        XCTAssertEqual(try batches(idle: true, slow: true), reference)
    }

    func testPreviewWritesCopies() throws {
        let data = try TempDir(), out = try TempDir()
        try data.write("cats/1.txt.jpg", Array("text".utf8))
        try data.write("cats/2.jpg", try Fixtures.bytes("scenes/street.jpg"))
        try data.write("dogs/3.png", try Fixtures.bytes("inputs/wide-glacier.png"))
        var skipped: [SkippedFile] = []
        let files = try Preview.write(dataset: data.url, out: out.url, augment: 3, images: 4, size: 32,
                                      onSkip: { skipped.append($0) })
        XCTAssertEqual(files.map(\.lastPathComponent),
                       ["cats-2-copy0.png", "cats-2-copy1.png", "cats-2-copy2.png", "cats-2-copy3.png", "cats-2-strip.png",
                        "dogs-3-copy0.png", "dogs-3-copy1.png", "dogs-3-copy2.png", "dogs-3-copy3.png", "dogs-3-strip.png"])
        XCTAssertEqual(skipped.count, 1)
        let strip = try ImageCodec.decode(file: files[4])
        XCTAssertEqual(strip.width, 128)
        XCTAssertEqual(strip.height, 32)
        XCTAssertEqual(try ImageCodec.decode(file: files[1]).width, 32)
    }
}
