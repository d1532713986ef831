import Foundation
import XCTest
import Imaging

/// Parity against the cv2 reference renders made by tools/goldens/imaging.py (Fixtures/parity.json):
/// the plain resize/pad/stretch/center-crop path and each augmentation at fixed parameters must stay
/// within a mean absolute difference of 1.0 gray level.
final class ParityTests: XCTestCase {
    func testRendersMatchOpenCVReference() throws {
        let manifest = try Fixtures.json("parity.json")
        let cases = manifest["cases"] as! [[String: Any]]
        XCTAssertGreaterThan(cases.count, 30)
        var worst = (name: "", mad: 0.0)
        for c in cases {
            let name = c["name"] as! String
            let size = c["size"] as! Int
            let fit = Fit(rawValue: c["fit"] as! String)!
            let parametersData = try JSONSerialization.data(withJSONObject: c["parameters"]!)
            let parameters = try JSONDecoder().decode(AugmentationParameters.self, from: parametersData)
            let policy: AugmentationPolicy = (c["policy"] as! String) == "standard" ? .standard : .none
            let input = try Fixtures.image(c["input"] as! String)
            let expected = try Fixtures.image(c["expected"] as! String)
            let rendered = try Geometry.render(input, size: size, fit: fit, parameters: parameters, policy: policy)
            XCTAssertEqual(rendered.width, expected.width, name)
            let mad = rendered.meanAbsoluteDifference(expected)
            XCTAssertLessThanOrEqual(mad, 1.0, "\(name): mean absolute difference \(mad) against cv2")
            if mad > worst.mad { worst = (name, mad) }
        }
        print("parity: \(cases.count) cases, worst \(worst.name) MAD \(String(format: "%.3f", worst.mad))")
    }

    /// Copy 0 must be exactly the plain path, whatever the policy.
    func testCopyZeroIsThePlainRender() throws {
        let image = try Fixtures.image("scenes/glacier.jpg")
        let plain = try Geometry.render(image, size: 96, fit: .pad, parameters: .identity, policy: .none)
        let copy0 = try Geometry.render(image, size: 96, fit: .pad, policy: .standard, copy: 0, seed: 42, contentHash: "abc")
        XCTAssertEqual(plain, copy0)
    }

    func testPlacementConventions() {
        XCTAssertEqual(Geometry.placement(width: 150, height: 100, size: 64, fit: .pad),
                       Geometry.Placement(width: 64, height: 43, x: 0, y: 10))
        XCTAssertEqual(Geometry.placement(width: 150, height: 100, size: 64, fit: .centerCrop),
                       Geometry.Placement(width: 96, height: 64, x: -16, y: 0))
        XCTAssertEqual(Geometry.placement(width: 150, height: 100, size: 64, fit: .stretch),
                       Geometry.Placement(width: 64, height: 64, x: 0, y: 0))
    }

    /// Pad keeps the borders black; an all-white wide image leaves exactly the pad rows at 0.
    func testPaddingIsBlack() throws {
        let white = RGBImage(width: 40, height: 20, pixels: [UInt8](repeating: 255, count: 40 * 20 * 3))
        let out = try Geometry.render(white, size: 40, fit: .pad, parameters: .identity, policy: .none)
        XCTAssertEqual(out.pixel(x: 20, y: 0).0, 0)
        XCTAssertEqual(out.pixel(x: 20, y: 9).0, 0)
        XCTAssertEqual(out.pixel(x: 20, y: 10).0, 255)
        XCTAssertEqual(out.pixel(x: 20, y: 29).0, 255)
        XCTAssertEqual(out.pixel(x: 20, y: 30).0, 0)
        // Contrast must not lift the padding either.
        let p = AugmentationParameters(contrast: 0.5)
        let c = try Geometry.render(white, size: 40, fit: .pad, parameters: p, policy: .standard)
        XCTAssertEqual(c.pixel(x: 20, y: 2).0, 0)
        // Nor may a crop of a non-square image show source pixels outside the crop in the padding.
        let gray = RGBImage(width: 40, height: 20, pixels: (0..<(40 * 20 * 3)).map { UInt8(truncatingIfNeeded: $0 % 251) })
        let cropped = try Geometry.render(gray, size: 40, fit: .pad, parameters: AugmentationParameters(cropArea: 0.64, cropX: 0.5, cropY: 0.5),
                                          policy: .standard)
        for x in 0..<40 {
            XCTAssertEqual(cropped.pixel(x: x, y: 9).0, 0)
            XCTAssertEqual(cropped.pixel(x: x, y: 30).0, 0)
        }
    }
}

/// Every supported format variant decodes to the cv2 reference (Fixtures/formats.json).
final class FormatTests: XCTestCase {
    func testFormatsDecodeLikeOpenCV() throws {
        let manifest = try Fixtures.json("formats.json")
        let entries = manifest["formats"] as! [[String: Any]]
        XCTAssertGreaterThanOrEqual(entries.count, 15)
        for e in entries {
            let file = e["file"] as! String
            let image = try Fixtures.image(file)
            let expected = try Fixtures.image(e["expected"] as! String)
            XCTAssertEqual(image.width, e["width"] as! Int, file)
            XCTAssertEqual(image.height, e["height"] as! Int, file)
            let mad = image.meanAbsoluteDifference(expected)
            XCTAssertLessThanOrEqual(mad, 1.0, "\(file): MAD \(mad) against cv2's decode")
        }
    }

    func testExifOrientationIsApplied() throws {
        let rotated = try Fixtures.image("formats/exif-rotate90.jpg")
        let upright = try Fixtures.image("formats/baseline.jpg")
        XCTAssertEqual(rotated.width, 30)
        XCTAssertEqual(rotated.height, 40)
        // Orientation 6 = rotate 90 degrees clockwise: the top-left of the stored image goes top-right.
        var total = 0
        for y in 0..<30 {
            for x in 0..<40 {
                let a = upright.pixel(x: x, y: y), b = rotated.pixel(x: 29 - y, y: x)
                total += abs(Int(a.0) - Int(b.0)) + abs(Int(a.1) - Int(b.1)) + abs(Int(a.2) - Int(b.2))
            }
        }
        XCTAssertLessThan(Double(total) / Double(30 * 40 * 3), 3.0)
    }

    func testAlphaIsCompositedOnBlack() throws {
        let rgba = try Fixtures.image("formats/rgba.png")       // alpha 0 at the left edge
        XCTAssertEqual(rgba.pixel(x: 0, y: 15).0, 0)
        XCTAssertEqual(rgba.pixel(x: 0, y: 15).1, 0)
        let opaque = try Fixtures.image("formats/rgb8.png")
        XCTAssertEqual(rgba.pixel(x: 39, y: 15).0, opaque.pixel(x: 39, y: 15).0)
        let gray = try Fixtures.image("formats/gray.jpg")
        let p = gray.pixel(x: 10, y: 10)
        XCTAssertEqual(p.0, p.1)
        XCTAssertEqual(p.1, p.2)
    }

    func testProbeReadsHeaders() throws {
        let h = try ImageCodec.probe(data: Data(try Fixtures.bytes("formats/rgba.png")), name: "rgba.png")
        XCTAssertEqual(h, ImageCodec.Header(format: .png, width: 40, height: 30, hasAlpha: true))
        for (file, format) in [("formats/progressive.jpg", ImageCodec.Header.Format.jpeg), ("formats/image.bmp", .bmp),
                               ("formats/lossy.webp", .webp), ("formats/lossless-alpha.webp", .webp)] {
            let h = try ImageCodec.probe(data: Data(try Fixtures.bytes(file)), name: file)
            XCTAssertEqual(h.format, format, file)
            XCTAssertEqual(h.width, 40, file)
            XCTAssertEqual(h.height, 30, file)
        }
    }

    func testPNGRoundTrip() throws {
        let image = try Fixtures.image("inputs/small-street.png")
        let dir = try TempDir()
        let url = dir.url.appendingPathComponent("x.png")
        try ImageCodec.writePNG(image, to: url)
        XCTAssertEqual(try ImageCodec.decode(file: url), image)
    }
}
