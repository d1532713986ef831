import Foundation
import XCTest
import Imaging
#if canImport(Glibc)
import Glibc
#endif

/// Header fields, names and sizes that once stopped or slowed a run: each is refused (or read) for that
/// file alone, with a reason, before anything is decoded.
final class HostileFileTests: XCTestCase {
    private func expectZeroDimension(_ bytes: [UInt8], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        // The identify pass (probe) and the decoder refuse it alike.
        for call in [{ _ = try ImageCodec.probe(data: Data(bytes), name: "/d/x") },
                     { _ = try ImageCodec.decode(bytes: bytes, name: "/d/x") }] {
            XCTAssertThrowsError(try call(), file: file, line: line) { error in
                guard case let ImagingError.badImage(_, kind, reason) = error else {
                    return XCTFail("unexpected error \(error)", file: file, line: line)
                }
                XCTAssertEqual(kind, .zeroDimension, reason, file: file, line: line)
                XCTAssertTrue(reason.contains(expected), reason, file: file, line: line)
            }
        }
    }

    func testZeroWidthOrHeightInEveryFormatIsRefusedByProbeAndDecode() throws {
        var png = try Fixtures.bytes("formats/rgb8.png")
        png.replaceSubrange(16..<20, with: [0, 0, 0, 0])               // IHDR width 0
        expectZeroDimension(png, "PNG header declares a size of 0x")

        var jpeg = try Fixtures.bytes("formats/baseline.jpg")
        let sof = (0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }!
        jpeg.replaceSubrange(sof + 5..<sof + 7, with: [0, 0])          // SOF0 height 0
        expectZeroDimension(jpeg, "JPEG header declares a size of ")

        var bmp = try Fixtures.bytes("formats/image.bmp")
        bmp.replaceSubrange(18..<22, with: [0, 0, 0, 0])                // BITMAPINFOHEADER width 0
        expectZeroDimension(bmp, "BMP header declares a size of 0x")

        var webp = try Fixtures.bytes("formats/lossy.webp")
        webp.replaceSubrange(26..<28, with: [0, 0])                     // VP8 frame width 0
        expectZeroDimension(webp, "WebP header declares a size of 0x")
    }

    func testFileAboveTheByteLimitIsRefusedBeforeReading() throws {
        let dir = try TempDir()
        let url = dir.url.appendingPathComponent("huge.jpg")
        // A sparse 4 GiB file: refused from its size alone (reading it would take tens of seconds).
        XCTAssertTrue(FileManager.default.createFile(atPath: url.path, contents: Data([0xFF, 0xD8, 0xFF])))
        XCTAssertEqual(truncate(url.path, 4 << 30), 0)
        XCTAssertThrowsError(try ImageCodec.readFile(url)) { error in
            guard case let ImagingError.badImage(path, kind, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertEqual(kind, .tooLarge)
            XCTAssertTrue(reason.contains("4294967296 bytes, above the limit of \(ImageCodec.maxFileBytes) bytes"), reason)
        }
        let small = try dir.write("small.jpg", try Fixtures.bytes("formats/baseline.jpg"))
        XCTAssertThrowsError(try ImageCodec.readFile(small, maxBytes: 100))
        XCTAssertNoThrow(try ImageCodec.readFile(small, maxBytes: 1 << 20))
    }

    /// A Latin-1 file name (as old archives have) is not valid UTF-8: the scan keeps its bytes, shows it
    /// escaped, and the file is read like any other.
    func testNonUTF8FileNameIsReadByItsBytesAndShownEscaped() throws {
        let dir = try TempDir()
        try dir.write("cats/a.jpg", try Fixtures.bytes("formats/baseline.jpg"))
        let name: [UInt8] = Array("\(dir.url.path)/cats/caf".utf8) + [0xE9] + Array(".jpg".utf8)
        let good = try Fixtures.bytes("formats/rgb8.png")
        let fd = (name + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o644) } }
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(good.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, good.count)
        close(fd)
        defer { _ = (name + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { unlink($0.baseAddress!) } } }

        let scan = try DatasetScan.scan(dir.url)
        XCTAssertEqual(scan.problems, [], "\(scan.problems)")
        XCTAssertEqual(scan.items.map(\.path.lastPathComponent), ["a.jpg", "caf\\xE9.jpg"])
        XCTAssertNil(scan.items[0].rawPath)
        XCTAssertEqual(scan.items[1].rawPath, name)
        XCTAssertEqual(try ImageCodec.readFile(scan.items[1]), good)
        // The pipeline decodes it too.
        let pipeline = try ImagePipeline(items: scan.items, size: 32, batchSize: 2, threads: 1)
        var decoded = 0
        _ = try pipeline.run({ decoded += $0.count }, onSkip: { XCTFail("skipped \($0)") })
        XCTAssertEqual(decoded, 2)
    }
}

/// libjpeg and libpng never print to stderr: what they say goes into the failure reason of the file that
/// caused it, or, for an image they decoded anyway, into `ImageCodec.takeWarnings()`.
final class CodecMessageTests: XCTestCase {
    /// Runs `body` with fd 2 sent to a file; returns what was written to it.
    private func stderrOutput(_ body: () throws -> Void) rethrows -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: file.path, contents: nil)
        let saved = dup(2)
        let fd = open(file.path, O_WRONLY)
        dup2(fd, 2)
        close(fd)
        defer {
            dup2(saved, 2)
            close(saved)
            try? FileManager.default.removeItem(at: file)
        }
        try body()
        return (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    }

    private func reason(_ bytes: [UInt8]) -> (ImagingError.BadImageKind, String)? {
        do {
            _ = try ImageCodec.decode(bytes: bytes, name: "/d/x")
            return nil
        } catch let ImagingError.badImage(_, kind, reason) {
            return (kind, reason)
        } catch {
            return nil
        }
    }

    func testJPEGWhoseDataEndsEarlyIsRefusedWithLibjpegsWordsOnBothDecodePaths() throws {
        let jpeg = try Fixtures.bytes("scenes/street.jpg")
        let cut = Array(jpeg.prefix(jpeg.count / 2)) + [0xFF, 0xD9]   // has an end marker, but half the data
        for plain in [true, false] {
            ImageCodec.usePlainJPEGPath(plain)
            defer { ImageCodec.usePlainJPEGPath(true) }
            var result: (ImagingError.BadImageKind, String)?
            let printed = stderrOutput { result = reason(cut) }
            XCTAssertEqual(printed, "", "plain path \(plain)")
            XCTAssertEqual(result?.0, .truncated)
            XCTAssertEqual(result?.1.contains("libjpeg: Corrupt JPEG data: premature end of data segment"), true, "\(String(describing: result))")
        }
    }

    func testCorruptPNGCarriesLibpngsMessage() throws {
        var png = try Fixtures.bytes("formats/rgb8.png")
        // Corrupt the first filter-type byte inside the zlib stream of IDAT: recompute nothing, so
        // libpng reports a CRC error (or a bad filter), never a silent success.
        let idat = (0..<(png.count - 4)).first { png[$0..<$0 + 4].elementsEqual(Array("IDAT".utf8)) }!
        for i in idat + 8 ..< idat + 24 { png[i] ^= 0x5A }
        var result: (ImagingError.BadImageKind, String)?
        let printed = stderrOutput { result = reason(png) }
        XCTAssertEqual(printed, "")
        XCTAssertEqual(result?.0, .corrupt)
        XCTAssertEqual(result?.1.contains("(libpng: "), true, "\(String(describing: result))")
    }

    func testWarningOfAnImageDecodedAnywayIsKeptWithItsName() throws {
        let jpeg = try Fixtures.bytes("scenes/street.jpg")
        XCTAssertEqual(Array(jpeg.suffix(2)), [0xFF, 0xD9])
        // Junk between the image data and the end marker (the decoder's look-ahead takes a few bytes).
        let padded = Array(jpeg.dropLast(2)) + [UInt8](repeating: 0x55, count: 64) + [0xFF, 0xD9]
        _ = ImageCodec.takeWarnings()
        var image: RGBImage?
        let printed = stderrOutput { image = try? ImageCodec.decode(bytes: padded, name: "/d/padded.jpg") }
        XCTAssertEqual(printed, "")
        XCTAssertEqual(image?.pixels, try ImageCodec.decode(bytes: jpeg, name: "/d/x").pixels)
        let warnings = ImageCodec.takeWarnings()
        XCTAssertEqual(warnings.map(\.path), ["/d/padded.jpg"])
        XCTAssertEqual(warnings.first?.reason.contains("extraneous bytes before marker 0xd9"), true, "\(warnings)")
    }
}

/// Special files named like images: none may block (a FIFO with no writer), be read without bound
/// (/dev/zero) or loop (a symlink to itself); a folder named x.jpg is just a folder.
final class SpecialFileTests: XCTestCase {
    func testFIFODevZeroFolderNamedJPGAndSymlinkLoop() throws {
        let dir = try TempDir()
        try dir.write("cats/good.jpg", try Fixtures.bytes("formats/baseline.jpg"))
        let cats = dir.url.appendingPathComponent("cats")
        XCTAssertEqual(mkfifo(cats.appendingPathComponent("fifo.jpg").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: cats.appendingPathComponent("zero.jpg").path, withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: cats.appendingPathComponent("self.jpg").path,
                                                   withDestinationPath: cats.appendingPathComponent("self.jpg").path)
        try dir.write("cats/folder.jpg/inner.jpg", try Fixtures.bytes("formats/baseline.jpg"))

        let scan = try DatasetScan.scan(dir.url)
        XCTAssertEqual(Set(scan.items.map(\.path.lastPathComponent)), ["good.jpg", "inner.jpg"])
        func reason(_ name: String) -> String? { scan.problems.first { $0.path.hasSuffix("/" + name) }?.reason }
        XCTAssertEqual(reason("fifo.jpg"), "not a regular file (device, pipe or socket)")
        XCTAssertEqual(reason("zero.jpg"), "not a regular file (device, pipe or socket)")
        XCTAssertEqual(reason("self.jpg")?.contains("symlink loop"), true)

        // Read directly (as a file given on the command line would be): refused at once.
        for name in ["fifo.jpg", "zero.jpg", "self.jpg", "folder.jpg"] {
            XCTAssertThrowsError(try ImageCodec.readFile(cats.appendingPathComponent(name)), name)
        }
    }
}
