import Foundation

/// Writes augmented copies of a few images as PNG files, to eyeball a policy before an expensive run
/// (`extract preview --data DIR --augment 8 --out DIR`).
public enum Preview {
    /// Picks `images` images (the first of each class in turn, training split first), renders copies
    /// 0...augment of each (copy 0 = plain) and writes `<class>-<file stem>-copy<k>.png` plus one strip
    /// `<class>-<file stem>-strip.png` with all copies side by side. Files that fail to decode are
    /// reported through `onSkip` and replaced by the next image of that class. Returns the written files.
    @discardableResult
    public static func write(dataset dir: URL, out: URL, augment: Int = 8, images: Int = 4, size: Int = 224,
                             fit: Fit = .pad, policy: AugmentationPolicy = .standard, seed: UInt64 = 0,
                             maxPixels: Int = ImageCodec.defaultMaxPixels,
                             onSkip: (SkippedFile) -> Void = { _ in }) throws -> [URL] {
        guard augment >= 0, images > 0 else { throw ImagingError.invalidArgument("augment must be >= 0 and images > 0") }
        guard size > 0, size <= 4096 else { throw ImagingError.invalidArgument("preview size must be 1...4096") }
        try policy.validate()
        let scan = try DatasetScan.scan(dir)
        do { try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ImagingError.writeFailed(path: out.path, reason: error.localizedDescription)
        }
        let preferred = scan.items.filter { $0.split == scan.items.first?.split }
        var queues = scan.classes.map { name in preferred.filter { $0.className == name }[...] }
        var written: [URL] = []
        var done = 0
        var progress = true
        while done < images && progress {
            progress = false
            for c in queues.indices where done < images {
                while let item = queues[c].popFirst() {
                    progress = true
                    do {
                        let bytes = try ImageCodec.readFile(item)
                        let sha = ContentHash.sha256Hex(bytes)
                        let image = try ImageCodec.decode(bytes: bytes, name: item.path.path, maxPixels: maxPixels)
                        let stem = item.path.deletingPathExtension().lastPathComponent
                        var strip = RGBImage(width: size * (augment + 1), height: size)
                        for copy in 0...augment {
                            let rendered = try Geometry.render(image, size: size, fit: fit, policy: policy, copy: copy,
                                                               seed: seed, contentHash: sha)
                            let url = out.appendingPathComponent("\(item.className)-\(stem)-copy\(copy).png")
                            try ImageCodec.writePNG(rendered, to: url)
                            written.append(url)
                            for y in 0..<size {
                                let from = y * size * 3, to = (y * strip.width + copy * size) * 3
                                strip.pixels.replaceSubrange(to..<(to + size * 3), with: rendered.pixels[from..<(from + size * 3)])
                            }
                        }
                        let stripURL = out.appendingPathComponent("\(item.className)-\(stem)-strip.png")
                        try ImageCodec.writePNG(strip, to: stripURL)
                        written.append(stripURL)
                        done += 1
                        break
                    } catch let error as ImagingError {
                        if case .writeFailed = error { throw error }
                        onSkip(SkippedFile(path: item.path.path, reason: error.reason))
                    }
                }
            }
        }
        return written
    }
}
