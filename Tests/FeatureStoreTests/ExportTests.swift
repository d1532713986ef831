import FeatureStore
import Foundation
import XCTest

final class ExportTests: StoreTestCase {
    /// Parses a .npy v1.0 file the way NumPy does: magic, version, header length, Python-literal dict.
    private func parseNPY(_ url: URL) throws -> (descr: String, fortran: Bool, shape: [Int], dataOffset: Int, data: Data) {
        let bytes = try Data(contentsOf: url)
        XCTAssertEqual(Array(bytes.prefix(6)), [0x93] + Array("NUMPY".utf8))
        XCTAssertEqual(bytes[6], 1)
        XCTAssertEqual(bytes[7], 0)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        let dataOffset = 10 + headerLength
        XCTAssertEqual(dataOffset % 64, 0, "data must start 64-byte aligned")
        let header = String(decoding: bytes[10..<dataOffset], as: UTF8.self)
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertTrue(header.hasPrefix("{"))
        func value(_ key: String) -> String? {
            guard let range = header.range(of: "'\(key)': ") else { return nil }
            let rest = header[range.upperBound...]
            if rest.hasPrefix("(") { return String(rest[..<rest.firstIndex(of: ")")!]) + ")" }
            return String(rest.prefix { $0 != "," })
        }
        let descr = value("descr")!.trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        let fortran = value("fortran_order") == "True"
        let shape = value("shape")!.dropFirst().dropLast().split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return (descr, fortran, shape, dataOffset, bytes.subdata(in: dataOffset..<bytes.count))
    }

    func testExportNPYHeadersAndContents() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 7, augs: 2, dim: 5)
        let out = directory.appendingPathComponent("export")
        let report = try store.exportNPY(extractionID: extraction.id, to: out)
        XCTAssertEqual(report.rows, 14)
        let matrix = try store.loadFeatures(extractionID: extraction.id)

        let features = try parseNPY(out.appendingPathComponent("features.npy"))
        XCTAssertEqual(features.descr, "<f4")
        XCTAssertFalse(features.fortran)
        XCTAssertEqual(features.shape, [14, 5])
        XCTAssertEqual(features.data.count, 14 * 5 * 4)
        let floats = features.data.withUnsafeBytes { raw in (0..<70).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        XCTAssertEqual(floats, matrix.values)

        let labels = try parseNPY(out.appendingPathComponent("labels.npy"))
        XCTAssertEqual(labels.descr, "<i8")
        XCTAssertEqual(labels.shape, [14])
        let ints = labels.data.withUnsafeBytes { raw in (0..<14).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        XCTAssertEqual(ints, matrix.labels)

        let csv = try String(contentsOf: out.appendingPathComponent("images.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.first, "row,image_id,aug_index,split,class_index,class_name,path,sha256")
        XCTAssertEqual(lines.count, 15)
        XCTAssertEqual(lines[1], "0,\(matrix.imageIDs[0]),0,\(matrix.splits[0].rawValue),\(matrix.labels[0]),\(matrix.classNames[matrix.labels[0]]),\(matrix.paths[0]),\(matrix.sha256s[0])")
        let classes = try JSONDecoder().decode([String].self, from: Data(contentsOf: out.appendingPathComponent("classes.json")))
        XCTAssertEqual(classes, ["a", "b", "c"])
    }

    func testNPYHeaderPaddingForManyShapes() throws {
        for shape in [[0], [1], [3, 4], [17000, 2048], [123456789, 1]] {
            let header = NPYFormat.header(descr: "<f4", shape: shape)
            XCTAssertEqual(header.count % 64, 0, "\(shape)")
            XCTAssertEqual(header.last, 0x0a)
            let text = String(decoding: header.dropFirst(10), as: UTF8.self)
            let expectedShape = shape.count == 1 ? "(\(shape[0]),)" : "(\(shape.map(String.init).joined(separator: ", ")))"
            XCTAssertTrue(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': \(expectedShape), }"), text)
        }
    }

    func testExportCSV() throws {
        let (store, _, extraction) = try populatedStore(path: storePath(), count: 3, augs: 1, dim: 4)
        let file = directory.appendingPathComponent("out/features.csv")
        try store.exportCSV(extractionID: extraction.id, to: file, split: .train)
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines[0], "path,split,class_index,class_name,aug_index,f0,f1,f2,f3")
        XCTAssertEqual(lines.count, 4)
        let matrix = try store.loadFeatures(extractionID: extraction.id, split: .train)
        let fields = lines[1].split(separator: ",")
        XCTAssertEqual(String(fields[0]), matrix.paths[0])
        XCTAssertEqual(fields.suffix(4).map { Float(String($0))! }, Array(matrix.row(0)))
    }
}
