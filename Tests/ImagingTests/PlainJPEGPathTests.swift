import Foundation
import Imaging
import XCTest

/// The libjpeg fast path (plain JPEGs straight to RGB) must give exactly OpenCV's pixels.
final class PlainJPEGPathTests: XCTestCase {
    override func tearDown() { ImageCodec.usePlainJPEGPath(true) }

    func decodeBoth(_ bytes: [UInt8], name: String) throws -> (fast: RGBImage, opencv: RGBImage) {
        ImageCodec.usePlainJPEGPath(true)
        let fast = try ImageCodec.decode(bytes: bytes, name: name)
        ImageCodec.usePlainJPEGPath(false)
        defer { ImageCodec.usePlainJPEGPath(true) }
        return (fast, try ImageCodec.decode(bytes: bytes, name: name))
    }

    /// Baseline, progressive, EXIF-rotated, CMYK and grayscale fixtures: same size and pixels.
    func testFixturesDecodeIdentically() throws {
        for name in ["formats/baseline.jpg", "formats/progressive.jpg", "formats/exif-rotate90.jpg", "formats/cmyk.jpg",
                     "formats/gray.jpg", "scenes/buildings.jpg", "scenes/glacier.jpg", "scenes/street.jpg"] {
            let (fast, opencv) = try decodeBoth(try Fixtures.bytes(name), name: name)
            XCTAssertEqual(fast.width, opencv.width, name)
            XCTAssertEqual(fast.height, opencv.height, name)
            XCTAssertTrue(fast.pixels == opencv.pixels, "\(name): the libjpeg path differs from OpenCV")
        }
    }

    /// Every scenes6 JPEG (2,400 files): identical pixels through both paths.
    func testEveryScenes6FileDecodesIdentically() throws {
        guard let root = Fixtures.scenes6() else { throw XCTSkip("scenes6 not beside the repo") }
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension.lowercased() == "jpg" }
        XCTAssertGreaterThanOrEqual(files.count, 2400)
        var differing: [String] = []
        for url in files {
            let bytes = try ImageCodec.readFile(url)
            let (fast, opencv) = try decodeBoth(bytes, name: url.path)
            if fast.width != opencv.width || fast.height != opencv.height || fast.pixels != opencv.pixels {
                differing.append(url.lastPathComponent)
            }
        }
        XCTAssertEqual(differing, [], "files whose libjpeg and OpenCV decodes differ")
    }

    /// Damaged JPEGs still fail (or decode) exactly as through OpenCV: the fast path never hides an error.
    func testTruncatedAndCorruptJPEGsBehaveAsBefore() throws {
        let good = try Fixtures.bytes("scenes/street.jpg")
        var corrupt = good
        for i in stride(from: good.count / 2, to: good.count / 2 + 40, by: 3) { corrupt[i] ^= 0x5A }
        for (label, bytes) in [("corrupt", corrupt), ("truncated", Array(good.prefix(good.count * 2 / 3)))] {
            ImageCodec.usePlainJPEGPath(true)
            let fast = Result { try ImageCodec.decode(bytes: bytes, name: label) }
            ImageCodec.usePlainJPEGPath(false)
            let opencv = Result { try ImageCodec.decode(bytes: bytes, name: label) }
            ImageCodec.usePlainJPEGPath(true)
            switch (fast, opencv) {
            case let (.success(a), .success(b)): XCTAssertTrue(a.pixels == b.pixels, label)
            case let (.failure(a), .failure(b)): XCTAssertEqual("\(a)", "\(b)", label)
            default: XCTFail("\(label): fast path \(fast) vs OpenCV \(opencv)")
            }
        }
    }
}
