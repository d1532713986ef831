import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The weight-file formats this module reads.
public enum WeightFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `torch.save` checkpoints: a zip archive (torch >= 1.6) or a legacy pickle stream.
    case pytorch
    /// Hugging Face safetensors (also what timm publishes).
    case safetensors
    /// Keras HDF5 weights: Keras 2 `save_weights("x.h5")` / keras.applications files, Keras 3 `.weights.h5`.
    case kerasHDF5

    public var description: String {
        switch self {
        case .pytorch: return "PyTorch checkpoint"
        case .safetensors: return "safetensors file"
        case .kerasHDF5: return "Keras HDF5 weight file"
        }
    }
}

/// Errors of the safetensors and Keras HDF5 readers and of the format dispatcher. (The PyTorch reader
/// throws `WeightFileError`, whose advice is torch-specific.) Every message names the file and says
/// what to do; none of these is ever reported by crashing.
public enum WeightFormatError: Error, CustomStringConvertible {
    /// The first bytes match none of the supported formats.
    case unrecognizedFormat(file: URL, firstBytes: [UInt8])
    /// The file ends before data its header announces (usually an interrupted download or save).
    case truncated(file: URL, format: WeightFormat, detail: String)
    /// The file is in the format but inconsistent: bad header, offsets out of range or overlapping,
    /// a shape that does not match its data, an unexpected layout...
    case malformed(file: URL, format: WeightFormat, detail: String)
    /// A tensor stored with an element type this module does not convert.
    case unsupportedDType(file: URL, format: WeightFormat, tensor: String, dtype: String)

    public var file: URL {
        switch self {
        case .unrecognizedFormat(let f, _), .truncated(let f, _, _), .malformed(let f, _, _),
             .unsupportedDType(let f, _, _, _):
            return f
        }
    }

    public var description: String {
        let path = file.path
        switch self {
        case .unrecognizedFormat(_, let bytes):
            let hex = bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "\(path): unrecognized weight file (first bytes: \(hex.isEmpty ? "<empty file>" : hex)); "
                + "supported formats: PyTorch torch.save checkpoints (.pt/.pth, zip or legacy pickle), "
                + "safetensors (.safetensors) and Keras HDF5 weights (.h5 from Keras 2 save_weights or "
                + "keras.applications, .weights.h5 from Keras 3)."
        case .truncated(_, let format, let detail):
            return "\(path): \(format) is truncated (\(detail)); re-download or re-save it."
        case .malformed(_, let format, let detail):
            return "\(path): invalid \(format) (\(detail)); " + WeightFormatError.advice(format)
        case .unsupportedDType(_, let format, let tensor, let dtype):
            let supported = format == .safetensors ? "F32, F16, BF16, F64, I64, I32" : "float16/32/64, int32/64"
            return "\(path): tensor '\(tensor)' has element type \(dtype), which is not supported "
                + "(supported: \(supported)); convert the weights to float32 and re-save them."
        }
    }

    private static func advice(_ format: WeightFormat) -> String {
        switch format {
        case .pytorch: return "re-save it with torch.save(model.state_dict(), path)."
        case .safetensors: return "re-download it or re-save it with safetensors' save_file."
        case .kerasHDF5:
            return "use the file keras.applications publishes, or re-save it with model.save_weights(...) "
                + "(Keras 2: .h5, Keras 3: .weights.h5)."
        }
    }
}

/// Opens a weight file in any supported format, decided by its first bytes (never by its extension).
public enum WeightFiles {
    /// Loads every tensor of `url` as Float32, whatever the format (see `detectFormat`).
    public static func load(_ url: URL) throws -> StateDict {
        try load(url, include: nil)
    }

    /// Loads the tensors of `url` for which `include(name)` is true; the others are checked as far
    /// as their headers go (name, shape, element type, where their bytes are) but their values are
    /// never read: they are listed in `StateDict.skipped`. A VGG16 file with its classifier is
    /// 553 MB of which 470 MB are fully connected weights that feature extraction never uses.
    /// `include` is called once per tensor, in file order. nil loads everything.
    public static func load(_ url: URL, include: ((String) -> Bool)?) throws -> StateDict {
        switch try detectFormat(url) {
        case .pytorch: return try PyTorchCheckpoint.load(url, include: include)
        case .safetensors: return try Safetensors.load(url, include: include)
        case .kerasHDF5: return try KerasHDF5.load(url, include: include)
        }
    }

    /// Names, shapes and element types of every tensor of `url`, without reading any values
    /// (for recognizing a file's layout before deciding what to load).
    public static func index(_ url: URL) throws -> WeightFileIndex {
        let format = try detectFormat(url)
        let sd = try load(url, include: { _ in false })
        return WeightFileIndex(file: url, format: format, tensors: sd.skipped, kerasLayerNames: sd.kerasLayerNames)
    }

    /// The format of `url` by magic bytes:
    /// - `89 48 44 46 0d 0a 1a 0a` ("\x89HDF\r\n\x1a\n"): HDF5, read as Keras weights;
    /// - "PK\x03\x04": a zip archive, read as a torch.save checkpoint;
    /// - a little-endian UInt64 header length of at most 100 MiB followed by '{': safetensors
    ///   (checked before the pickle rule: such a length may start with byte 0x80);
    /// - 0x80 then a protocol byte 2...5: a legacy torch.save pickle.
    public static func detectFormat(_ url: URL) throws -> WeightFormat {
        let head = try readHead(url, count: 16).bytes
        if head.starts(with: hdf5Signature) { return .kerasHDF5 }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return .pytorch }
        if head.count >= 9, head[8] == UInt8(ascii: "{"), safetensorsHeaderLength(head).map({ $0 <= Safetensors.maxHeaderBytes }) == true {
            return .safetensors
        }
        if head.count >= 2, head[0] == 0x80, (2...5).contains(head[1]) { return .pytorch }
        throw WeightFormatError.unrecognizedFormat(file: url, firstBytes: Array(head.prefix(12)))
    }

    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    static func safetensorsHeaderLength(_ head: [UInt8]) -> Int? {
        guard head.count >= 8 else { return nil }
        var n: UInt64 = 0
        for i in (0..<8).reversed() { n = n << 8 | UInt64(head[i]) }
        return n > UInt64(Int.max) ? nil : Int(n)
    }

    /// Up to `count` bytes from the start of the file (fewer if it is shorter) and the file's size,
    /// without mapping it.
    static func readHead(_ url: URL, count: Int) throws -> (bytes: [UInt8], size: Int) {
        let (fd, size) = try MappedFile.openRegularFile(url)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, count - filled, off_t(filled)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw WeightFileError.cannotOpen(file: url, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            filled += n
        }
        return (Array(buffer.prefix(filled)), size)
    }
}
