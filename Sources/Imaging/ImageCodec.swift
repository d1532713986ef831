import CImageCodec
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Decoding and encoding of image files through the OpenCV shim.
///
/// Decoding always yields 8-bit RGB: gray, CMYK, palette and 16-bit images are converted, EXIF orientation
/// is applied (images without alpha), and alpha is composited on black. The pixel limit is checked against
/// the size in the file's header before any pixel memory is allocated.
public enum ImageCodec {
    /// Default refusal threshold: 100 megapixels (a 300 MB RGB buffer). Larger headers are almost always
    /// corrupt or hostile ("decompression bombs"); pass a larger `maxPixels` for genuine giant scans.
    public static let defaultMaxPixels = 100_000_000
    /// Files above this size are refused without reading them (`extract --max-file-bytes`): 256 MiB is
    /// far above any real photo, and far below what a mislabelled video or disk image can be.
    public static let maxFileBytes = 256 << 20

    /// What an image header says, read without decoding.
    public struct Header: Hashable, Sendable {
        public enum Format: String, Sendable { case jpeg, png, bmp, webp }
        public let format: Format
        public let width: Int
        public let height: Int
        public let hasAlpha: Bool
        public init(format: Format, width: Int, height: Int, hasAlpha: Bool) {
            self.format = format
            self.width = width
            self.height = height
            self.hasAlpha = hasAlpha
        }
    }

    /// Plain 3-component JPEGs without EXIF decode through libjpeg straight to RGB (the default) or
    /// through OpenCV like every other image. Same pixels either way (tested); a switch for tests and
    /// benchmarks. Process-wide; set it before decoding starts.
    public static func usePlainJPEGPath(_ enabled: Bool) { cic_set_plain_jpeg_path(enabled ? 1 : 0) }

    public static func decode(file: URL, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        let bytes = try readFile(file)
        return try decode(bytes: bytes, name: file.path, maxPixels: maxPixels)
    }

    public static func decode(data: Data, name: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        try data.withUnsafeBytes { try decode(buffer: $0, name: name, maxPixels: maxPixels) }
    }

    public static func decode(bytes: [UInt8], name: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode(buffer: $0, name: name, maxPixels: maxPixels) }
    }

    /// Decodes an encoded buffer. `name` only appears in error messages.
    public static func decode(buffer: UnsafeRawBufferPointer, name: String,
                              maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        configureOpenCVOnce
        var handle: OpaquePointer?
        var message = [CChar](repeating: 0, count: 512)
        let rc = buffer.withMemoryRebound(to: UInt8.self) { bytes in
            cic_decode(bytes.baseAddress, bytes.count, Int64(maxPixels), &handle, &message, message.count)
        }
        guard rc == Int32(CIC_OK), let image = handle else {
            throw error(code: rc, message: message, name: name)
        }
        defer { cic_image_free(image) }
        if message[0] != 0 { Warnings.add(name, message) }
        let width = Int(cic_image_width(image)), height = Int(cic_image_height(image))
        let count = width * height * 3
        guard let source = cic_image_pixels(image), count > 0 else {
            throw ImagingError.badImage(path: name, kind: .corrupt, reason: "decoded to an empty image")
        }
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            out.baseAddress!.update(from: source, count: count)
            initialized = count
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Reads only the header (format, stored size, alpha). Throws the same errors decode would for a
    /// missing/garbled header; a header that reads fine can still fail to decode.
    public static func probe(data: Data, name: String) throws -> Header {
        var header = cic_header()
        var message = [CChar](repeating: 0, count: 512)
        let rc = data.withUnsafeBytes { raw in
            raw.withMemoryRebound(to: UInt8.self) { cic_probe($0.baseAddress, $0.count, &header, &message, message.count) }
        }
        guard rc == Int32(CIC_OK) else { throw error(code: rc, message: message, name: name) }
        let format: Header.Format
        switch Int(header.format) {
        case Int(CIC_FORMAT_JPEG): format = .jpeg
        case Int(CIC_FORMAT_PNG): format = .png
        case Int(CIC_FORMAT_BMP): format = .bmp
        default: format = .webp
        }
        return Header(format: format, width: Int(header.width), height: Int(header.height),
                      hasAlpha: header.has_alpha != 0)
    }

    /// Encodes as PNG (lossless; used for previews and reference fixtures).
    public static func encodePNG(_ image: RGBImage) throws -> Data {
        try encode(image, "PNG") { cic_encode_png($0, $1, $2, $3, $4, $5, $6) }
    }

    /// Encodes as baseline JPEG, `quality` 0...100 (thumbnails in reports).
    public static func encodeJPEG(_ image: RGBImage, quality: Int = 85) throws -> Data {
        guard (0...100).contains(quality) else { throw ImagingError.invalidArgument("JPEG quality \(quality) is not in 0...100") }
        return try encode(image, "JPEG") { cic_encode_jpeg($0, $1, $2, Int32(quality), $3, $4, $5, $6) }
    }

    private static func encode(_ image: RGBImage, _ format: String,
                               _ call: (UnsafePointer<UInt8>?, Int32, Int32, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                                        UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = image.pixels.withUnsafeBufferPointer {
            call($0.baseAddress, Int32(image.width), Int32(image.height), &out, &length, &message, message.count)
        }
        guard rc == Int32(CIC_OK), let bytes = out else {
            throw ImagingError.writeFailed(path: "(\(format) encoder)", reason: String(cString: message))
        }
        defer { cic_free(bytes) }
        return Data(bytes: bytes, count: length)
    }

    /// `image` shrunk (area interpolation) or enlarged (bilinear) so its longer side is `maxSide`
    /// pixels, aspect ratio kept (the shorter side at least 1 pixel).
    public static func thumbnail(_ image: RGBImage, maxSide: Int) throws -> RGBImage {
        guard maxSide > 0 else { throw ImagingError.invalidArgument("thumbnail size \(maxSide) must be positive") }
        let scale = Double(maxSide) / Double(max(image.width, image.height))
        let w = max(1, Int((Double(image.width) * scale).rounded())), h = max(1, Int((Double(image.height) * scale).rounded()))
        var out = RGBImage(width: w, height: h)
        let rc = image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                cic_resize_place(src.baseAddress, Int32(image.width), Int32(image.height), Int32(w), Int32(h), 0, 0,
                                 dst.baseAddress, Int32(w), Int32(h), scale < 1 ? Int32(CIC_INTER_AREA) : Int32(CIC_INTER_LINEAR))
            }
        }
        guard rc == Int32(CIC_OK) else { throw ImagingError.invalidArgument("thumbnail resize failed (code \(rc))") }
        return out
    }

    public static func writePNG(_ image: RGBImage, to url: URL) throws {
        let data = try encodePNG(image)
        do { try data.write(to: url, options: .atomic) } catch {
            throw ImagingError.writeFailed(path: url.path, reason: "\(error.localizedDescription)")
        }
    }

    /// Reads a whole file with POSIX calls so the error says exactly why (permission denied, is a
    /// directory, too many levels of symbolic links, ...). The size is checked with fstat before any byte
    /// is read: a file above `maxBytes` is refused at once, however large. FIFOs, devices and sockets are
    /// refused without blocking.
    public static func readFile(_ url: URL, maxBytes: Int = maxFileBytes) throws -> [UInt8] {
        try readFile(fileSystemPath: Array(url.path.utf8), display: url.path, maxBytes: maxBytes)
    }

    /// Reads a dataset item by the bytes of its name on disk, so a file whose name is not valid UTF-8
    /// (a Latin-1 name from an old archive) is read like any other; errors show the escaped name.
    public static func readFile(_ item: DatasetItem, maxBytes: Int = maxFileBytes) throws -> [UInt8] {
        try readFile(fileSystemPath: item.fileSystemPath, display: item.path.path, maxBytes: maxBytes)
    }

    static func readFile(fileSystemPath: [UInt8], display path: String, maxBytes: Int) throws -> [UInt8] {
        let fd = (fileSystemPath + [0]).withUnsafeBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }  // never block on a FIFO named .jpg
        }
        if fd < 0 { throw ImagingError.unreadable(path: path, reason: errnoText()) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw ImagingError.unreadable(path: path, reason: errnoText()) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw ImagingError.unreadable(path: path, reason: "it is a directory") }
        if (info.st_mode & S_IFMT) != S_IFREG { throw ImagingError.unreadable(path: path, reason: "not a regular file") }
        let size = Int(info.st_size)
        if size > maxBytes {
            throw ImagingError.badImage(path: path, kind: .tooLarge,
                                        reason: "file is \(size) bytes, above the limit of \(maxBytes) bytes (refused before reading; raise --max-file-bytes if it is a genuine image)")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < size {
                let n = read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ImagingError.unreadable(path: path, reason: errnoText())
                }
                if n == 0 { break }   // file shrank while reading
                done += n
            }
        }
        if done < size { bytes.removeSubrange(done...) }
        return bytes
    }

    static func errnoText() -> String { String(cString: strerror(errno)).lowercased() }

    private static func error(code: Int32, message: [CChar], name: String) -> ImagingError {
        let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let kind: ImagingError.BadImageKind
        switch Int(code) {
        case Int(CIC_ERR_EMPTY): kind = .empty
        case Int(CIC_ERR_NOT_IMAGE): kind = .notAnImage
        case Int(CIC_ERR_UNSUPPORTED): kind = .unsupportedFormat
        case Int(CIC_ERR_BAD_HEADER): kind = .badHeader
        case Int(CIC_ERR_ZERO_DIMENSION): kind = .zeroDimension
        case Int(CIC_ERR_TOO_LARGE): kind = .tooLarge
        case Int(CIC_ERR_TRUNCATED): kind = .truncated
        default: kind = .corrupt
        }
        return .badImage(path: name, kind: kind, reason: text.isEmpty ? "could not decode" : text)
    }

    /// What libjpeg/libpng said about images they decoded anyway (e.g. "Corrupt JPEG data: 2 extraneous
    /// bytes before marker 0xd9"), with the file's name, since the last call; never printed by the
    /// libraries themselves. `extract` reports them in one summary line.
    public static func takeWarnings() -> [SkippedFile] { Warnings.take() }

    private enum Warnings {
        static let lock = NSLock()
        nonisolated(unsafe) static var items: [SkippedFile] = []

        static func add(_ name: String, _ message: [CChar]) {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            lock.lock()
            items.append(SkippedFile(path: name, reason: text))
            lock.unlock()
        }

        static func take() -> [SkippedFile] {
            lock.lock()
            defer { lock.unlock() }
            let taken = items
            items = []
            return taken
        }
    }

    /// OpenCV's own thread pool is switched off once: the pipeline runs one image per worker thread,
    /// and nested OpenCV parallelism on 150x150 images only adds overhead and oversubscription.
    static let configureOpenCVOnce: Void = { cic_set_opencv_threads(0) }()

    public static var openCVVersion: String { String(cString: cic_opencv_version()) }
}
