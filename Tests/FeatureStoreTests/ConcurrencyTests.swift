import FeatureStore
import Foundation
import XCTest

final class ConcurrencyTests: StoreTestCase {
    func testReaderKeepsItsSnapshotWhileAnotherConnectionWrites() throws {
        let path = storePath()
        let (writer, dataset, extraction) = try populatedStore(path: path, count: 8, augs: 1)
        let reader = try FeatureStore(path: path, mode: .readOnly)
        let newIDs = try writer.upsertImages(images(datasetID: dataset.id, range: 8..<12))
        let batch = newIDs.map { FeatureRow(imageID: $0, augIndex: 0, values: [Float](repeating: 1, count: 8)) }

        try reader.readSnapshot {
            let before = try reader.loadFeatures(extractionID: extraction.id)
            XCTAssertEqual(before.rows, 8)
            // The writer is not blocked by the open read transaction (WAL)...
            XCTAssertEqual(try writer.insertFeatures(extractionID: extraction.id, rows: batch), 4)
            XCTAssertEqual(try writer.featureCount(extractionID: extraction.id), 12)
            // ...and the reader still sees exactly what it saw before.
            let during = try reader.loadFeatures(extractionID: extraction.id)
            XCTAssertEqual(during.rows, 8)
            XCTAssertEqual(during.values, before.values)
            XCTAssertEqual(try reader.info().extractions.first?.features, 8)
        }
        XCTAssertEqual(try reader.loadFeatures(extractionID: extraction.id).rows, 12)
    }

    func testConcurrentReaderOnlySeesWholeBatches() throws {
        let path = storePath()
        let (setup, dataset, extraction) = try populatedStore(path: path, count: 0, augs: 0, dim: 256)
        setup.close()
        let batchSize = 25, batches = 40
        let errors = ErrorBox()
        let writerDone = DispatchSemaphore(value: 0)
        let finished = Flag()

        Thread.detachNewThread {
            defer { finished.set(); writerDone.signal() }
            do {
                let writer = try FeatureStore(path: path, mode: .readWrite)
                for b in 0..<batches {
                    let ids = try writer.upsertImages(self.images(datasetID: dataset.id, range: (b * batchSize)..<((b + 1) * batchSize)))
                    try writer.insertFeatures(extractionID: extraction.id, rows: ids.map {
                        FeatureRow(imageID: $0, augIndex: 0, values: [Float](repeating: Float(b), count: 256))
                    })
                }
            } catch { errors.add("writer: \(error)") }
        }

        let reader = try FeatureStore(path: path, mode: .readOnly)
        var reads = 0
        repeat {
            let matrix = try reader.loadFeatures(extractionID: extraction.id)
            reads += 1
            if matrix.rows % batchSize != 0 { errors.add("saw \(matrix.rows) rows, not whole batches of \(batchSize)") }
            // Every row is complete: all 256 values equal (the batch number).
            for r in 0..<matrix.rows where Set(matrix.row(r)).count != 1 { errors.add("row \(r) is torn") }
        } while !finished.isSet
        writerDone.wait()
        XCTAssertEqual(errors.messages, [])
        XCTAssertGreaterThan(reads, 1)
        XCTAssertEqual(try reader.featureCount(extractionID: extraction.id), batchSize * batches)
    }

    /// `store info` polling a store that `extract` is creating: the file is either missing or a
    /// complete store (a new store is built beside its path and linked into place).
    func testStoreBeingCreatedIsMissingOrComplete() throws {
        let paths = (0..<20).map { storePath("new\($0).sqlite") }
        let errors = ErrorBox()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            for path in paths {
                do { try FeatureStore(path: path, mode: .create).close() } catch { errors.add("create: \(error)") }
            }
        }
        for path in paths {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                do {
                    let version = try FeatureStore(path: path, mode: .readOnly).fileSchemaVersion()
                    XCTAssertEqual(version, FeatureStore.schemaVersion)
                    break
                } catch let error as StoreError {
                    if case .cannotOpen(_, let reason) = error, reason == "no such file" { continue }
                    errors.add("\(error)")
                    break
                }
            }
        }
        done.wait()
        XCTAssertEqual(errors.messages, [])
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".creating-") }
        XCTAssertEqual(left, [], "temporary files left behind")
    }

    /// What `train-head` does while `extract` is still writing the same store from another
    /// process: open it read-write, load the features (again and again), and save a head. Every
    /// load sees whole batches with the right values, nothing waits into a busy error, and the
    /// writer finishes every batch.
    func testTrainHeadStyleReaderWhileAnotherProcessWritesFeatures() throws {
        guard let binary = ConcurrencyTests.stressBinary() else {
            throw XCTSkip("FeatureStoreStress binary not found next to the test bundle; build the package first")
        }
        let path = storePath("shared.sqlite")
        let batchSize = 40, dim = 256, batches = 60
        let process = Process()
        process.executableURL = binary
        // 10 ms between batches: on a fast quiet machine the 60 batches otherwise committed (in about
        // 0.2 s) before the reader's third load, and the test saw no overlap.
        process.arguments = [path, "\(batchSize)", "\(dim)", "\(batches)", "10"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(60)
        while !seen.contains("batch 1\n") && Date() < deadline && process.isRunning {
            seen += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        }

        let reader = try FeatureStore(path: path, mode: .readWrite)
        let extraction = try XCTUnwrap(try reader.extractions(backbone: "stress").first)
        var loads = 0, grew = false, lastRows = 0
        repeat {
            let matrix = try reader.loadFeatures(extractionID: extraction.id, split: .train)
            loads += 1
            XCTAssertEqual(matrix.rows % batchSize, 0, "load \(loads) saw \(matrix.rows) rows, not whole batches")
            grew = grew || (lastRows > 0 && matrix.rows > lastRows)
            lastRows = matrix.rows
            for r in 0..<matrix.rows {
                let parts = matrix.paths[r].dropLast(4).split(separator: "-")
                guard parts.count == 3, let k = Int(parts[1]), let j = Int(parts[2]) else { XCTFail("path \(matrix.paths[r])"); break }
                if matrix.row(r).first != Float(k * 1000 + j) || matrix.row(r).last != Float(k * 1000 + j) + Float(dim - 1) / Float(dim) {
                    XCTFail("load \(loads): row \(r) (\(matrix.paths[r])) has wrong values"); break
                }
            }
            if loads == 2 {
                try reader.saveHead(HeadRecord(extractionID: extraction.id, config: "{}", classNames: matrix.classNames,
                                               weights: VectorCodec.encode([1, 2]), metrics: "{}", curves: "{}"))
            }
        } while process.isRunning
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "the writer failed while the reader read")
        XCTAssertGreaterThan(loads, 2)
        XCTAssertTrue(grew, "no load saw the writer's progress (\(loads) loads)")
        XCTAssertEqual(try reader.featureCount(extractionID: extraction.id), batchSize * batches)
        XCTAssertEqual(try reader.heads(extractionID: extraction.id).count, 1)
        XCTAssertEqual(try reader.verify(), [])
    }

    /// Kills a writing child process with SIGKILL at random moments; every time, the store must
    /// be intact and hold whole batches only, and the next run must resume after the last one.
    func testKillDashNineLeavesOnlyWholeBatches() throws {
        guard let binary = ConcurrencyTests.stressBinary() else {
            throw XCTSkip("FeatureStoreStress binary not found next to the test bundle; build the package first")
        }
        let path = storePath("stress.sqlite")
        let batchSize = 40, dim = 512
        var lastCount = 0
        // Round 0 kills the child almost at once (while it creates and migrates the store).
        for round in 0..<5 {
            let process = Process()
            process.executableURL = binary
            process.arguments = [path, "\(batchSize)", "\(dim)"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.standardError
            try process.run()
            var seen = ""
            if round == 0 {
                usleep(UInt32.random(in: 0...20_000))
            } else {
                // Wait for the child to commit a couple of batches, then kill it at a random moment.
                let deadline = Date().addingTimeInterval(60)
                while seen.components(separatedBy: "batch ").count < 3 && Date() < deadline && process.isRunning {
                    seen += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
                }
                usleep(UInt32.random(in: 0...150_000))
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, "round \(round): child exited by itself: \(seen)")

            let store = try FeatureStore(path: path, mode: .create)
            XCTAssertEqual(try store.verify(), [], "round \(round)")
            XCTAssertEqual(try store.fileSchemaVersion(), FeatureStore.schemaVersion)
            if round == 0 { store.close(); continue }
            guard let extraction = try store.extractions(backbone: "stress").first else {
                XCTFail("round \(round): no extraction"); continue
            }
            let matrix = try store.loadFeatures(extractionID: extraction.id)
            XCTAssertEqual(matrix.rows % batchSize, 0, "round \(round): \(matrix.rows) rows is not whole batches")
            XCTAssertGreaterThan(matrix.rows, lastCount, "round \(round) added nothing")
            lastCount = matrix.rows
            for r in 0..<matrix.rows {
                // Path "img-k-j.png" -> value at d is k*1000 + j + d/dim.
                let parts = matrix.paths[r].dropLast(4).split(separator: "-")
                guard parts.count == 3, let k = Int(parts[1]), let j = Int(parts[2]) else {
                    XCTFail("unexpected path \(matrix.paths[r])"); break
                }
                let expected = (0..<dim).map { Float(k * 1000 + j) + Float($0) / Float(dim) }
                if Array(matrix.row(r)) != expected { XCTFail("round \(round): row \(r) (\(matrix.paths[r])) has wrong values"); break }
            }
            store.close()
        }
    }

    /// The stress executable is built into the same directory as the test bundle.
    static func stressBinary() -> URL? {
        var candidates = [Bundle.main.bundleURL, Bundle(for: ConcurrencyTests.self).bundleURL.deletingLastPathComponent(),
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                for config in ["release", "debug"] { candidates.append(dir.appendingPathComponent(".build/\(config)")) }
                break
            }
            dir.deleteLastPathComponent()
        }
        return candidates.map { $0.appendingPathComponent("FeatureStoreStress") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ message: String) { lock.lock(); if list.count < 20 { list.append(message) }; lock.unlock() }
    var messages: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
