import Foundation
import XCTest

/// The scene experiment's mistake (pixels divided by 255 before Keras models that expect 0-255)
/// cannot be made with `extract`: a user hands over image files, the backbone applies its own
/// preprocessing, and there is no option to change it.
final class PreprocessingTests: XCTestCase {
    struct Reference: Decodable {
        struct Image: Decodable { let name: String; let input: String; let feature: [Float] }
        let images: [Image]
    }

    /// The 224x224 PNGs that tools/goldens/lite0.py fed to the PyTorch port of EfficientNet-Lite0
    /// after its (x - 127) / 128 normalisation, through `extract` as plain files (0-255 pixels, as
    /// every image file is): the stored features equal PyTorch's within 1e-4 relative L2, and the
    /// extraction records the backbone's preprocessing, not anything the user chose.
    func testExtractAppliesTheBackbonesOwnPreprocessingToImageFiles() throws {
        let fixtures = CLI.repo.appendingPathComponent("Tests/BackboneTests/Fixtures/lite0")
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: fixtures.appendingPathComponent("reference.json")))
        let dir = try CLI.temporaryDirectory()
        let data = dir.appendingPathComponent("data/images")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for image in ref.images {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(image.input),
                                            to: data.appendingPathComponent("\(image.name).png"))
        }
        let store = dir.appendingPathComponent("f.sqlite")
        let r = try CLI.run("extract", ["--backbone", "efficientnet_lite0", "--data", data.deletingLastPathComponent().path,
                                        "--store", store.path, "--quiet", "--precision", "fp32"])
        if r.stderr.contains("weights") && r.status != 0 { throw XCTSkip("Lite0 weights not installed (run scripts/setup): \(r.stderr)") }
        XCTAssertEqual(r.status, 0, r.stderr)

        let csv = dir.appendingPathComponent("features.csv")
        let e = try CLI.run("extract", ["store", "export", "--store", store.path, "--extraction", "1", "--format", "csv", "--out", csv.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertEqual(lines.count, ref.images.count)
        for line in lines {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            let name = URL(fileURLWithPath: String(fields[0])).deletingPathExtension().lastPathComponent
            guard let image = ref.images.first(where: { $0.name == name }) else { return XCTFail("unexpected row \(fields[0])") }
            let ours = fields.dropFirst(5).compactMap { Float($0) }
            XCTAssertEqual(ours.count, 1280)
            var num = 0.0, den = 0.0
            for (a, b) in zip(ours, image.feature) { num += Double(a - b) * Double(a - b); den += Double(b) * Double(b) }
            XCTAssertLessThan((num / den).squareRoot(), 1e-4, "features of \(name) through extract vs PyTorch")
        }

        let info = try CLI.run("extract", ["store", "info", store.path])
        XCTAssertTrue(info.stdout.contains("mean=127.0000,127.0000,127.0000;std=128.0000,128.0000,128.0000"), info.stdout)
    }

    /// There is no knob to rescale pixels: such options are refused before any work, and `--help`
    /// says the preprocessing belongs to the backbone.
    func testNoOptionChangesThePreprocessing() throws {
        let dir = try CLI.temporaryDirectory()
        for option in [["--rescale", "255"], ["--preprocessing", "divide255"], ["--scale", "0.00392"], ["--mean", "0"]] {
            let r = try CLI.run("extract", ["--backbone", "resnet50", "--data", dir.path, "--store", dir.appendingPathComponent("f.sqlite").path] + option)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("Unknown option"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("f.sqlite").path))
        }
        let help = try CLI.run("extract", ["run", "--help"])
        XCTAssertTrue(help.stdout.lowercased().contains("preprocessing"), help.stdout)
    }

    /// `--feature fc7` exists for VGG16 only, and is checked before any work.
    func testFc7IsOnlyVGG16s() throws {
        let dir = try CLI.temporaryDirectory()
        let r = try CLI.run("extract", ["--backbone", "resnet50", "--feature", "fc7", "--data", dir.path,
                                        "--store", dir.appendingPathComponent("f.sqlite").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("other outputs exist for vgg16: fc7"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("f.sqlite").path))
    }
}
