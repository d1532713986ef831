import Foundation

/// NumPy `.npy` (format version 1.0) writing: little-endian, C order.
public enum NPYFormat {
    /// The complete header (magic, version, length, dict, padding) for an array of `descr`
    /// (e.g. "<f4", "<i8") and `shape`. Padded with spaces and a final newline so the data starts
    /// at a multiple of 64 bytes, as NumPy does.
    public static func header(descr: String, shape: [Int]) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(dict.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        return data
    }

    /// Writes a float32 array of `shape`.
    public static func write(_ values: [Float], shape: [Int], to url: URL) throws {
        var data = header(descr: "<f4", shape: shape)
        values.withUnsafeBytes { data.append(contentsOf: $0) } // x86/arm are little-endian
        try write(data, to: url)
    }

    /// Writes an int64 array of `shape`.
    public static func write(_ values: [Int64], shape: [Int], to url: URL) throws {
        var data = header(descr: "<i8", shape: shape)
        values.map { $0.littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
        try write(data, to: url)
    }

    static func write(_ data: Data, to url: URL) throws {
        do { try data.write(to: url, options: .atomic) } catch {
            throw StoreError.io(path: url.path, reason: error.localizedDescription)
        }
    }
}

/// What an export wrote.
public struct ExportReport: Codable, Equatable, Sendable {
    public var files: [String]
    public var rows: Int
    public var dim: Int
}

extension FeatureStore {
    /// Exports one extraction for NumPy users into `dir` (created if needed):
    /// - `features.npy`: float32, shape (rows, dim), rows in `loadFeatures` order
    /// - `labels.npy`: int64 class indices (-1: an unlabeled image), shape (rows,)
    /// - `images.csv`: row, image_id, aug_index, split, class_index, class_name, path, sha256
    /// - `classes.json`: the class names in label order
    @discardableResult
    public func exportNPY(extractionID: Int64, to dir: URL, split: ImageSplit? = nil, maxAugIndex: Int? = nil) throws -> ExportReport {
        let matrix = try loadFeatures(extractionID: extractionID, split: split, maxAugIndex: maxAugIndex)
        try makeDirectory(dir)
        let featuresURL = dir.appendingPathComponent("features.npy")
        let labelsURL = dir.appendingPathComponent("labels.npy")
        let imagesURL = dir.appendingPathComponent("images.csv")
        let classesURL = dir.appendingPathComponent("classes.json")
        try NPYFormat.write(matrix.values, shape: [matrix.rows, matrix.dim], to: featuresURL)
        try NPYFormat.write(matrix.labels.map(Int64.init), shape: [matrix.rows], to: labelsURL)

        var csv = "row,image_id,aug_index,split,class_index,class_name,path,sha256\n"
        for i in 0..<matrix.rows {
            let label = matrix.labels[i]
            let className = matrix.classNames.indices.contains(label) ? matrix.classNames[label] : ""
            csv += "\(i),\(matrix.imageIDs[i]),\(matrix.augIndex[i]),\(matrix.splits[i].rawValue),\(label),"
            csv += "\(csvField(className)),\(csvField(matrix.paths[i])),\(matrix.sha256s[i])\n"
        }
        try NPYFormat.write(Data(csv.utf8), to: imagesURL)
        let classesJSON = try JSONEncoder().encode(matrix.classNames)
        try NPYFormat.write(classesJSON, to: classesURL)
        return ExportReport(files: [featuresURL.path, labelsURL.path, imagesURL.path, classesURL.path],
                            rows: matrix.rows, dim: matrix.dim)
    }

    /// Exports one extraction as a single CSV: path, split, class_index, class_name, aug_index,
    /// f0 ... f(dim-1) (shortest round-tripping decimal floats).
    @discardableResult
    public func exportCSV(extractionID: Int64, to file: URL, split: ImageSplit? = nil, maxAugIndex: Int? = nil) throws -> ExportReport {
        let matrix = try loadFeatures(extractionID: extractionID, split: split, maxAugIndex: maxAugIndex)
        try makeDirectory(file.deletingLastPathComponent())
        guard FileManager.default.createFile(atPath: file.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: file.path) else {
            throw StoreError.io(path: file.path, reason: "cannot create the file")
        }
        defer { try? handle.close() }
        var chunk = "path,split,class_index,class_name,aug_index"
        for j in 0..<matrix.dim { chunk += ",f\(j)" }
        chunk += "\n"
        do {
            for i in 0..<matrix.rows {
                let label = matrix.labels[i]
                let className = matrix.classNames.indices.contains(label) ? matrix.classNames[label] : ""
                chunk += "\(csvField(matrix.paths[i])),\(matrix.splits[i].rawValue),\(label),\(csvField(className)),\(matrix.augIndex[i])"
                for value in matrix.row(i) { chunk += ",\(value)" }
                chunk += "\n"
                if chunk.utf8.count > 1 << 20 {
                    try handle.write(contentsOf: Data(chunk.utf8))
                    chunk = ""
                }
            }
            try handle.write(contentsOf: Data(chunk.utf8))
        } catch {
            throw StoreError.io(path: file.path, reason: error.localizedDescription)
        }
        return ExportReport(files: [file.path], rows: matrix.rows, dim: matrix.dim)
    }

    private func makeDirectory(_ dir: URL) throws {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw StoreError.io(path: dir.path, reason: error.localizedDescription)
        }
    }
}

/// Quotes a CSV field when it contains a comma, quote or newline (RFC 4180).
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
