import Foundation
import XCTest
import Imaging

/// Each kind of bad input gets one clear message (path + reason), is recorded, and never stops a run.
final class BadInputTests: XCTestCase {
    private func expectBadImage(_ bytes: [UInt8], kind: ImagingError.BadImageKind, contains text: String,
                                maxPixels: Int = ImageCodec.defaultMaxPixels, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ImageCodec.decode(bytes: bytes, name: "/data/x.jpg", maxPixels: maxPixels), file: file, line: line) { error in
            guard case let ImagingError.badImage(path, k, reason) = error else {
                return XCTFail("unexpected error \(error)", file: file, line: line)
            }
            XCTAssertEqual(path, "/data/x.jpg", file: file, line: line)
            XCTAssertEqual(k, kind, "\(error)", file: file, line: line)
            XCTAssertTrue(reason.contains(text), "\(reason)", file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("/data/x.jpg: "), file: file, line: line)
        }
    }

    func testZeroByteFile() {
        expectBadImage([], kind: .empty, contains: "empty")
    }

    func testTruncatedJPEG() throws {
        let jpeg = try Fixtures.bytes("scenes/street.jpg")
        expectBadImage(Array(jpeg.prefix(jpeg.count * 6 / 10)), kind: .truncated, contains: "truncated")
        expectBadImage(Array(jpeg.prefix(100)), kind: .badHeader, contains: "JPEG")
    }

    func testTruncatedPNG() throws {
        let png = try Fixtures.bytes("inputs/small-street.png")
        expectBadImage(Array(png.prefix(png.count / 2)), kind: .corrupt, contains: "could not decode")
    }

    func testTextFileNamedJPG() {
        expectBadImage(Array("Hello, these are my notes about cats.\n".utf8), kind: .notAnImage, contains: "text")
        expectBadImage([0x00, 0x01, 0x02, 0x03, 0x04, 0x05], kind: .notAnImage, contains: "00 01 02 03")
    }

    func testUnsupportedFormat() {
        expectBadImage(Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0], kind: .unsupportedFormat, contains: "GIF")
        expectBadImage([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0], kind: .unsupportedFormat, contains: "TIFF")
    }

    /// PNG header with width 0, then with 100000 x 100000: refused from the header, before decoding.
    func testZeroAndAbsurdDimensions() throws {
        var png = try Fixtures.bytes("formats/rgb8.png")
        func setSize(_ w: UInt32, _ h: UInt32) {
            for i in 0..<4 {
                png[16 + i] = UInt8((w >> (24 - 8 * UInt32(i))) & 0xFF)
                png[20 + i] = UInt8((h >> (24 - 8 * UInt32(i))) & 0xFF)
            }
        }
        setSize(0, 30)
        expectBadImage(png, kind: .zeroDimension, contains: "0x30")
        setSize(100_000, 100_000)
        expectBadImage(png, kind: .tooLarge, contains: "10000000000 pixels")
        // A JPEG whose frame header claims 65535 x 65535.
        var jpeg = try Fixtures.bytes("formats/baseline.jpg")
        let sof = (0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }!
        for i in 5..<9 { jpeg[sof + i] = 0xFF }
        expectBadImage(jpeg, kind: .tooLarge, contains: "65535x65535")
        // The limit is per call: a 40x30 image is refused at maxPixels 1000.
        expectBadImage(try Fixtures.bytes("formats/baseline.jpg"), kind: .tooLarge, contains: "limit of 1000", maxPixels: 1000)
    }

    /// Tests run as root, and chmod 000 does not stop root. setfsuid() drops the filesystem uid of the
    /// calling thread (and with it CAP_DAC_OVERRIDE) so the permission check really happens.
    func testUnreadablePermissions() throws {
        let dir = try TempDir()
        let file = try dir.write("locked.jpg", try Fixtures.bytes("formats/baseline.jpg"))
        chmod(file.path, 0)
        typealias SetFSUID = @convention(c) (UInt32) -> Int32
        let asRoot = geteuid() == 0
        var restore: (() -> Void)?
        if asRoot {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setfsuid") else {
                throw XCTSkip("running as root and setfsuid is unavailable: cannot make a file unreadable")
            }
            let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
            _ = setfsuid(65534)
            restore = { _ = setfsuid(0) }
        }
        defer { restore?() }
        XCTAssertThrowsError(try ImageCodec.decode(file: file)) { error in
            guard case let ImagingError.unreadable(path, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, file.path)
            XCTAssertTrue(reason.contains("permission denied"), reason)
        }
    }

    func testSymlinkLoopsAndOddFilesInScan() throws {
        let dir = try TempDir()
        let good = try Fixtures.bytes("formats/baseline.jpg")
        try dir.write("cats/a.jpg", good)
        try dir.write("cats/notes.txt", Array("not an image".utf8))
        try dir.write("cats/anim.gif", Array("GIF89a".utf8))
        try dir.write("cats/empty.jpg", [])
        try dir.write("dogs/b.png", try Fixtures.bytes("formats/rgb8.png"))
        try dir.mkdir("birds")                                                   // empty class folder
        let cats = dir.url.appendingPathComponent("cats")
        try FileManager.default.createSymbolicLink(atPath: cats.appendingPathComponent("loop").path,
                                                   withDestinationPath: cats.path)  // folder loop
        try FileManager.default.createSymbolicLink(atPath: cats.appendingPathComponent("x.jpg").path,
                                                   withDestinationPath: cats.appendingPathComponent("y.jpg").path)
        try FileManager.default.createSymbolicLink(atPath: cats.appendingPathComponent("y.jpg").path,
                                                   withDestinationPath: cats.appendingPathComponent("x.jpg").path)
        let scan = try DatasetScan.scan(dir.url)
        XCTAssertEqual(scan.classes, ["cats", "dogs"])
        XCTAssertEqual(scan.items.map(\.path.lastPathComponent), ["a.jpg", "b.png"])
        XCTAssertEqual(scan.items.map(\.classIndex), [0, 1])
        XCTAssertNil(scan.items[0].split)
        func reason(_ name: String) -> String? { scan.problems.first { $0.path.hasSuffix("/" + name) }?.reason }
        XCTAssertEqual(reason("notes.txt"), "not an image file (.txt)")
        XCTAssertEqual(reason("anim.gif")?.contains("unsupported image format .gif"), true)
        XCTAssertEqual(reason("empty.jpg"), "empty file (0 bytes)")
        XCTAssertEqual(reason("birds")?.contains("empty class folder"), true)
        XCTAssertEqual(reason("loop")?.contains("symlink loop"), true)
        XCTAssertEqual(reason("x.jpg")?.contains("symlink loop"), true)
        XCTAssertEqual(reason("y.jpg")?.contains("symlink loop"), true)
        XCTAssertEqual(scan.problems.count, 7, "\(scan.problems)")
    }

    func testFolderWithNoClasses() throws {
        let dir = try TempDir()
        try dir.write("a.jpg", try Fixtures.bytes("formats/baseline.jpg"))
        XCTAssertThrowsError(try DatasetScan.scan(dir.url)) { error in
            XCTAssertTrue("\(error)".contains("no class folders"), "\(error)")
        }
        XCTAssertThrowsError(try DatasetScan.scan(dir.url.appendingPathComponent("missing"))) { error in
            XCTAssertTrue("\(error)".contains("not a folder"), "\(error)")
        }
    }

    func testDatasetWithNoUsableImageFailsBeforeWork() throws {
        let dir = try TempDir()
        try dir.write("cats/readme.txt", Array("x".utf8))
        try dir.write("dogs/empty.jpg", [])
        XCTAssertThrowsError(try DatasetScan.scan(dir.url)) { error in
            XCTAssertTrue("\(error)".contains("no usable image files"), "\(error)")
        }
    }

    /// Decode-level failures are reported once each through onSkip, in item order; good images still come out.
    func testPipelineSkipsBadFilesAndGoesOn() throws {
        let dir = try TempDir()
        let jpeg = try Fixtures.bytes("scenes/street.jpg")
        try dir.write("a/1-good.jpg", jpeg)
        try dir.write("a/2-text.jpg", Array("hello".utf8))
        try dir.write("a/3-truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)))
        try dir.write("b/4-good.png", try Fixtures.bytes("formats/rgba.png"))
        var huge = try Fixtures.bytes("formats/rgb8.png")
        huge.replaceSubrange(16..<24, with: [0, 1, 0, 0, 0, 1, 0, 0])            // 65536 x 65536
        try dir.write("b/5-huge.png", huge)
        try dir.write("b/6-vanishes.jpg", jpeg)
        let scan = try DatasetScan.scan(dir.url)
        XCTAssertEqual(scan.items.count, 6)
        try FileManager.default.removeItem(at: dir.url.appendingPathComponent("b/6-vanishes.jpg"))
        var skipped: [SkippedFile] = []
        var entries: [ImagePipeline.Entry] = []
        let pipeline = try ImagePipeline(items: scan.items, size: 32, policy: .standard, copies: 2, batchSize: 3, threads: 2)
        let stats = try pipeline.run({ entries += $0.entries }, onSkip: { skipped.append($0) })
        XCTAssertEqual(entries.map { "\($0.item.path.lastPathComponent)#\($0.copy)" },
                       ["1-good.jpg#0", "1-good.jpg#1", "4-good.png#0", "4-good.png#1"])
        XCTAssertEqual(skipped.map { URL(fileURLWithPath: $0.path).lastPathComponent },
                       ["2-text.jpg", "3-truncated.jpg", "5-huge.png", "6-vanishes.jpg"])
        XCTAssertTrue(skipped[0].reason.contains("text"))
        XCTAssertTrue(skipped[1].reason.contains("truncated"))
        XCTAssertTrue(skipped[2].reason.contains("above the limit"))
        XCTAssertTrue(skipped[3].reason.contains("no such file"), skipped[3].reason)
        XCTAssertEqual(stats.skipped, 4)
        XCTAssertEqual(stats.images, 4)
        XCTAssertEqual(stats.batches, 2)
    }
}
