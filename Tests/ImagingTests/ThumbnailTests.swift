import Foundation
@testable import Imaging
import XCTest

/// Report thumbnails: the aspect-keeping resize and the JPEG encoder (OpenCV imencode).
final class ThumbnailTests: XCTestCase {
    /// A smooth gradient (JPEG keeps it within a few levels).
    func gradient(width: Int, height: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                px[i] = UInt8(x * 255 / max(width - 1, 1)); px[i + 1] = UInt8(y * 255 / max(height - 1, 1)); px[i + 2] = 128
            }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    func testThumbnailKeepsAspectRatio() throws {
        let wide = try ImageCodec.thumbnail(gradient(width: 300, height: 200), maxSide: 96)
        XCTAssertEqual([wide.width, wide.height], [96, 64])
        let tall = try ImageCodec.thumbnail(gradient(width: 150, height: 600), maxSide: 96)
        XCTAssertEqual([tall.width, tall.height], [24, 96])
        let sliver = try ImageCodec.thumbnail(gradient(width: 1000, height: 2), maxSide: 96)
        XCTAssertEqual([sliver.width, sliver.height], [96, 1])
        let small = try ImageCodec.thumbnail(gradient(width: 40, height: 30), maxSide: 96)
        XCTAssertEqual([small.width, small.height], [96, 72])
        // Area-averaged: the corners keep the gradient's values.
        let (r, g, _) = wide.pixel(x: 95, y: 63)
        XCTAssertGreaterThan(r, 240); XCTAssertGreaterThan(g, 240)
        XCTAssertThrowsError(try ImageCodec.thumbnail(wide, maxSide: 0))
    }

    func testJPEGRoundTrip() throws {
        let image = try ImageCodec.thumbnail(gradient(width: 300, height: 200), maxSide: 96)
        let jpeg = try ImageCodec.encodeJPEG(image, quality: 80)
        XCTAssertEqual(Array(jpeg.prefix(3)), [0xFF, 0xD8, 0xFF], "JPEG SOI marker")
        XCTAssertEqual(try ImageCodec.probe(data: jpeg, name: "thumb").format, .jpeg)
        let back = try ImageCodec.decode(data: jpeg, name: "thumb")
        XCTAssertEqual([back.width, back.height], [96, 64])
        XCTAssertLessThan(back.meanAbsoluteDifference(image), 3)
        XCTAssertLessThan(try ImageCodec.encodeJPEG(image, quality: 20).count, jpeg.count, "lower quality, fewer bytes")
        XCTAssertThrowsError(try ImageCodec.encodeJPEG(image, quality: 101))
    }
}
