import FeatureStore
import Foundation
import GRDB
import WorkbenchSupport
import XCTest

/// A fresh temporary directory per test, removed afterwards.
class StoreTestCase: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("FeatureStoreTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func storePath(_ name: String = "store.sqlite") -> String { directory.appendingPathComponent(name).path }

    /// Settings for a small synthetic extraction.
    func settings(datasetID: Int64, backbone: String = "tiny", dim: Int = 8, dtype: FeatureDType = .f32,
                  seed: Int64 = 7, policy: String = #"{"flip": true, "crops": 2}"#) -> ExtractionSettings {
        ExtractionSettings(datasetID: datasetID, backbone: backbone, weightsSHA256: String(repeating: "b", count: 64),
                           weightsSource: "/weights/\(backbone).bin", preprocessing: #"{"mean":[0.5],"std":[0.25]}"#,
                           augmentationPolicy: policy, imageSize: 32, fit: "center-crop", precision: "f32",
                           featureDType: dtype, featureDim: dim, toolVersion: "0.1.0", seed: seed)
    }

    /// Synthetic images: image i is "class{i % classes}/img{i}.jpg", train unless i % 4 == 3.
    func images(datasetID: Int64, range: Range<Int>, classes: Int = 3) -> [ImageRecord] {
        range.map { i in
            ImageRecord(datasetID: datasetID, sha256: sha("image-\(i)"), path: "class\(i % classes)/img\(i).jpg",
                        classIndex: i % classes, split: i % 4 == 3 ? .test : .train, width: 100 + i, height: 80)
        }
    }

    func sha(_ text: String) -> String { SHA256Digest.hex(text) }

    /// A deterministic vector for (image content, aug index).
    func vector(_ key: String, aug: Int, dim: Int) -> [Float] {
        var seed = UInt64(truncatingIfNeeded: key.hashValueStable &+ UInt64(aug) &* 7919)
        return (0..<dim).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 20000) / 1000 - 10
        }
    }

    /// Runs SQL on a file through a plain GRDB connection, outside the store's checks (to build
    /// old or damaged stores by hand).
    func rawExec(_ path: String, _ sql: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
            try queue.close()
        } catch {
            XCTFail("raw SQL failed: \(error)", file: file, line: line)
        }
    }

    /// Asserts `body` throws a StoreError whose description contains every one of `fragments`.
    func assertStoreError<T>(_ body: @autoclosure () throws -> T, contains fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected an error containing \(fragments)", file: file, line: line)
        } catch let error as StoreError {
            for fragment in fragments {
                XCTAssertTrue(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"",
                              file: file, line: line)
            }
        } catch {
            XCTFail("expected StoreError, got \(error)", file: file, line: line)
        }
    }

    /// A store with one dataset (3 classes), `count` images and one extraction with `augs`
    /// vectors per image (all inserted).
    @discardableResult
    func populatedStore(path: String, count: Int = 12, augs: Int = 2, dim: Int = 8, dtype: FeatureDType = .f32)
        throws -> (FeatureStore, DatasetRecord, ExtractionRecord) {
        let store = try FeatureStore(path: path, mode: .create)
        let dataset = try store.dataset(root: "/data/scenes", classes: ["a", "b", "c"])
        let ids = try store.upsertImages(images(datasetID: dataset.id, range: 0..<count))
        let extraction = try store.extraction(for: settings(datasetID: dataset.id, dim: dim, dtype: dtype))
        var rows: [FeatureRow] = []
        for (i, id) in ids.enumerated() {
            for aug in 0..<augs { rows.append(FeatureRow(imageID: id, augIndex: aug, values: vector("image-\(i)", aug: aug, dim: dim))) }
        }
        try store.insertFeatures(extractionID: extraction.id, rows: rows)
        return (store, dataset, extraction)
    }
}

extension String {
    /// FNV-1a: Swift's hashValue is randomly seeded per process, this is not.
    var hashValueStable: UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return hash
    }
}
