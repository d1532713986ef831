import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One image of a dataset: where it is, its class, and its predefined split ("train"/"test"), if any.
public struct DatasetItem: Hashable, Codable, Sendable {
    /// The path as shown and stored: the name on disk, with any byte that is not valid UTF-8 written
    /// as `\xNN` (see `FileName`).
    public let path: URL
    public let className: String
    public let classIndex: Int
    /// "train" or "test" for datasets with predefined split folders; nil for `DIR/<class>/*` datasets;
    /// "unlabeled" for the images of `DIR/unlabeled/` when scanned with `unlabeled: true` (class index -1, no name).
    public let split: String?
    /// The path's bytes on disk when they are not valid UTF-8 (nil otherwise: `path` is exact).
    public let rawPath: [UInt8]?

    public init(path: URL, className: String, classIndex: Int, split: String?, rawPath: [UInt8]? = nil) {
        self.path = path
        self.className = className
        self.classIndex = classIndex
        self.split = split
        self.rawPath = rawPath
    }

    /// The bytes to hand to open(2).
    public var fileSystemPath: [UInt8] { rawPath ?? Array(path.path.utf8) }
}

/// A path as the file system has it (bytes) and as people read it. Linux file names are bytes; a name
/// from an old archive may be Latin-1, which no Swift `String` (nor Foundation's URL) can hold. Such
/// bytes are shown as `\xNN`, and the file is opened by its real bytes.
struct FileName: Hashable {
    let bytes: [UInt8]
    let display: String
    /// Whether `display` is not the path itself (some byte was escaped).
    let escaped: Bool

    init(_ path: String) {
        bytes = Array(path.utf8)
        display = path
        escaped = false
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if let text = String(validating: bytes, as: UTF8.self) {
            display = text
            escaped = false
        } else {
            display = Self.escape(bytes)
            escaped = true
        }
    }

    func appending(_ name: FileName) -> FileName {
        let joined = bytes.last == UInt8(ascii: "/") ? bytes + name.bytes : bytes + [UInt8(ascii: "/")] + name.bytes
        return FileName(bytes: joined)
    }

    var url: URL { URL(fileURLWithPath: display) }

    /// Valid UTF-8 sequences as they are, every other byte as `\xNN`.
    static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < bytes.count {
            // Longest valid UTF-8 sequence starting at i (1-4 bytes).
            var matched = 0
            for length in 1...4 where i + length <= bytes.count {
                if String(validating: bytes[i ..< i + length], as: UTF8.self) != nil { matched = length; break }
            }
            if matched > 0 {
                out += String(decoding: bytes[i ..< i + matched], as: UTF8.self)
                i += matched
            } else {
                out += String(format: "\\x%02X", bytes[i])
                i += 1
            }
        }
        return out
    }

    func withCString<T>(_ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
        try (bytes + [0]).withUnsafeBufferPointer { raw in
            try raw.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}

/// A file or folder that was left out, with one clear reason. Recorded, counted, never fatal.
public struct SkippedFile: Hashable, Codable, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// The result of scanning a dataset folder.
///
/// Layouts:
///   DIR/<class>/*                              one split (items have split == nil)
///   DIR/train/<class>/*, DIR/test/<class>/*    predefined splits; `seg_train`/`seg_test` are accepted
///                                              and normalised to "train"/"test", and a doubled folder
///                                              (seg_train/seg_train/<class>) is descended into.
/// Class folders may contain sub-folders (searched recursively; symlinks followed, loops detected).
/// Classes are the sorted names of class folders holding at least one image file; their index is the
/// position in that sorted list. Items are ordered by split (train, then test), class, then path.
/// Files are judged here by name and size only (cheap); decoding problems are found later by the
/// pipeline and reported through its `onSkip` callback.
public struct DatasetScan: Sendable {
    public let root: URL
    public let classes: [String]
    public let items: [DatasetItem]
    /// Files and folders left out, in scan order.
    public let problems: [SkippedFile]
    /// ["train", "test"] (those present) for split layouts, [] for a single-split dataset.
    public let splits: [String]

    /// File extensions (lower-cased) taken as images.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "jpe", "jfif", "png", "bmp", "dib", "webp"]
    /// Image formats we recognise by extension but do not decode: reported as unsupported, not as "not an image".
    static let unsupportedImageExtensions: Set<String> = ["gif", "tif", "tiff", "heic", "heif", "avif", "svg", "ico",
                                                          "psd", "jp2", "j2k", "jxl", "raw", "cr2", "nef", "dng",
                                                          "arw", "pbm", "pgm", "ppm", "pnm", "exr", "hdr", "tga"]
    static let splitNames: [String: String] = ["train": "train", "test": "test",
                                                "seg_train": "train", "seg_test": "test"]

    public func items(inSplit split: String?) -> [DatasetItem] { items.filter { $0.split == split } }

    /// The folder of `DIR` holding images without a class when scanning with `unlabeled: true`.
    public static let unlabeledFolder = "unlabeled"

    /// Scans `dir`. Throws `ImagingError.badDataset` when the folder is missing, has no class folders, or
    /// has no usable image at all (before any decoding work starts). With `unlabeled`, `DIR/unlabeled/`
    /// (searched recursively) is not a class or split folder: its images come last, with split "unlabeled".
    public static func scan(_ dir: URL, unlabeled: Bool = false) throws -> DatasetScan {
        let root = dir.standardizedFileURL
        var problems: [SkippedFile] = []
        guard case .directory = FileKind.of(FileName(root.path)) else {
            throw ImagingError.badDataset(path: root.path, reason: "not a folder (or missing); expected DIR/<class>/*.jpg or DIR/train/<class>/*.jpg")
        }
        var top = try listFolder(FileName(root.path), problems: &problems)
        var unlabeledFiles: [FileName] = []
        if unlabeled && !top.contains(where: { $0.isDirectory && $0.name == unlabeledFolder }) {
            return try scanFlatUnlabeled(root, top: top, problems: problems)
        }
        if unlabeled {
            let folder = top.first(where: { $0.isDirectory && $0.name == unlabeledFolder })!
            top.removeAll { $0.name == unlabeledFolder }
            var visited = Set<FileID>()
            if let id = FileID.of(folder.url) { visited.insert(id) }
            collect(folder.url, into: &unlabeledFiles, visited: &visited, problems: &problems)
            if unlabeledFiles.isEmpty { problems.append(SkippedFile(path: folder.url.display, reason: "no image files in the unlabeled folder")) }
        }
        let splitDirs = top.filter { $0.isDirectory && splitNames[$0.name] != nil }

        // (split, class folder) pairs.
        var classFolders: [(split: String?, name: String, url: FileName)] = []
        var splits: [String] = []
        if splitDirs.isEmpty {
            for entry in top {
                if entry.isDirectory {
                    classFolders.append((nil, entry.name, entry.url))
                } else if isImageName(entry.name) {
                    problems.append(SkippedFile(path: entry.url.display, reason: "image outside any class folder: ignored (put it in DIR/<class>/)"))
                }
            }
        } else {
            var used: [String: String] = [:]   // normalised split -> folder name
            for entry in splitDirs.sorted(by: { $0.name.count < $1.name.count || ($0.name.count == $1.name.count && $0.name < $1.name) }) {
                let split = splitNames[entry.name]!
                if let other = used[split] {
                    problems.append(SkippedFile(path: entry.url.display, reason: "second \(split) folder ignored (already using \(other)/)"))
                    continue
                }
                used[split] = entry.name
                var folder = entry.url
                var children = try listFolder(folder, problems: &problems)
                // Kaggle-style doubling: seg_train/seg_train/<class>.
                if children.count == 1, children[0].isDirectory, children[0].name == entry.name {
                    folder = children[0].url
                    children = try listFolder(folder, problems: &problems)
                }
                for child in children where child.isDirectory {
                    classFolders.append((split, child.name, child.url))
                }
                for child in children where !child.isDirectory && isImageName(child.name) {
                    problems.append(SkippedFile(path: child.url.display, reason: "image outside any class folder: ignored"))
                }
            }
            splits = ["train", "test"].filter { used[$0] != nil }
            for entry in top where entry.isDirectory && splitNames[entry.name] == nil {
                problems.append(SkippedFile(path: entry.url.display, reason: "folder ignored: not a split folder (expected train/ and test/)"))
            }
        }
        if classFolders.isEmpty {
            throw ImagingError.badDataset(path: root.path, reason: "no class folders found; expected DIR/<class>/*.jpg or DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg")
        }

        // Collect candidate files per class folder.
        var found: [(split: String?, className: String, files: [FileName])] = []
        for folder in classFolders {
            var visited = Set<FileID>()
            if let id = FileID.of(folder.url) { visited.insert(id) }
            var files: [FileName] = []
            collect(folder.url, into: &files, visited: &visited, problems: &problems)
            if files.isEmpty {
                problems.append(SkippedFile(path: folder.url.display, reason: "empty class folder: no image files (class left out)"))
            }
            found.append((folder.split, folder.name, files))
        }
        let classes = Set(found.filter { !$0.files.isEmpty }.map(\.className)).sorted()
        guard !classes.isEmpty else {
            let hint = problems.prefix(3).map(\.description).joined(separator: "; ")
            throw ImagingError.badDataset(path: root.path, reason: "no usable image files in any class folder" + (hint.isEmpty ? "" : " (\(hint))"))
        }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        func splitRank(_ s: String?) -> Int { s == nil ? 0 : (s == "train" ? 0 : 1) }
        var items: [DatasetItem] = []
        for group in found.sorted(by: { (splitRank($0.split), $0.className) < (splitRank($1.split), $1.className) }) {
            guard let classIndex = index[group.className] else { continue }
            for file in group.files.sorted(by: { $0.display < $1.display }) {
                items.append(DatasetItem(path: file.url, className: group.className, classIndex: classIndex,
                                         split: group.split, rawPath: file.escaped ? file.bytes : nil))
            }
        }
        for file in unlabeledFiles.sorted(by: { $0.display < $1.display }) {
            items.append(DatasetItem(path: file.url, className: "", classIndex: -1, split: unlabeledFolder,
                                     rawPath: file.escaped ? file.bytes : nil))
        }
        return DatasetScan(root: root, classes: classes, items: items, problems: problems, splits: splits)
    }

    /// `--unlabeled` on a folder with no `unlabeled/` folder: a folder of images without classes (the
    /// experiment's `seg_pred`, also as Kaggle's doubled `seg_pred/seg_pred/`), searched recursively, every
    /// image with split "unlabeled"; a dataset with no classes, which `train-head --pseudo-label` pairs with
    /// a labeled dataset extracted with the same backbone settings. A folder of class or split folders is
    /// refused (it is labeled: its unlabeled images go in DIR/unlabeled/).
    static func scanFlatUnlabeled(_ root: URL, top: [Entry], problems: [SkippedFile]) throws -> DatasetScan {
        var problems = problems
        var folder = FileName(root.path), entries = top
        if entries.count == 1, entries[0].isDirectory, entries[0].name == root.lastPathComponent {
            folder = entries[0].url
            entries = try listFolder(folder, problems: &problems)
        }
        let labeled = entries.filter { $0.isDirectory }.filter { e in
            splitNames[e.name] != nil || ((try? listFolder(e.url, problems: &problems)) ?? []).contains { !$0.isDirectory && isImageName($0.name) }
        }
        if !labeled.isEmpty && !entries.contains(where: { !$0.isDirectory && isImageName($0.name) }) {
            throw ImagingError.badDataset(path: root.path, reason: "--unlabeled: this looks like a labeled dataset (\(labeled.prefix(3).map(\.name).joined(separator: ", ")), ...) without an \(unlabeledFolder)/ folder; put its images without a class in DIR/\(unlabeledFolder)/, or give --data a folder of images without class folders")
        }
        var files: [FileName] = []
        var visited = Set<FileID>()
        if let id = FileID.of(folder) { visited.insert(id) }
        collect(folder, into: &files, visited: &visited, problems: &problems)
        guard !files.isEmpty else {
            throw ImagingError.badDataset(path: root.path, reason: "--unlabeled: no image files in this folder")
        }
        let items = files.sorted(by: { $0.display < $1.display }).map {
            DatasetItem(path: $0.url, className: "", classIndex: -1, split: unlabeledFolder, rawPath: $0.escaped ? $0.bytes : nil)
        }
        return DatasetScan(root: root, classes: [], items: items, problems: problems, splits: [])
    }

    // MARK: File system helpers (POSIX, so every failure has its errno text)

    static func isImageName(_ name: String) -> Bool {
        imageExtensions.contains((name as NSString).pathExtension.lowercased())
    }

    struct Entry {
        let name: String
        let url: FileName
        let isDirectory: Bool
    }

    /// Non-hidden entries of a folder, sorted by name; a folder that cannot be listed is a dataset error
    /// at the top levels (the caller asked for it) and a recorded problem below.
    static func listFolder(_ folder: FileName, problems: inout [SkippedFile]) throws -> [Entry] {
        guard let names = readNames(folder) else {
            throw ImagingError.badDataset(path: folder.display, reason: "cannot list folder: \(ImageCodec.errnoText())")
        }
        return names.compactMap { name in
            let child = folder.appending(name)
            switch FileKind.of(child) {
            case .directory: return Entry(name: name.display, url: child, isDirectory: true)
            case .regular: return Entry(name: name.display, url: child, isDirectory: false)
            default: return nil
            }
        }
    }

    /// Recursively collects candidate image files, recording everything it leaves out.
    static func collect(_ folder: FileName, into files: inout [FileName], visited: inout Set<FileID>, problems: inout [SkippedFile]) {
        guard let names = readNames(folder) else {
            problems.append(SkippedFile(path: folder.display, reason: "cannot list folder: \(ImageCodec.errnoText())"))
            return
        }
        for name in names {
            let url = folder.appending(name)
            let ext = (name.display as NSString).pathExtension.lowercased()
            switch FileKind.of(url) {
            case .directory:
                guard let id = FileID.of(url), visited.insert(id).inserted else {
                    problems.append(SkippedFile(path: url.display, reason: "folder already visited through another path (symlink loop or duplicate link): skipped"))
                    continue
                }
                collect(url, into: &files, visited: &visited, problems: &problems)
            case .regular(let size):
                if imageExtensions.contains(ext) {
                    if size == 0 {
                        problems.append(SkippedFile(path: url.display, reason: "empty file (0 bytes)"))
                    } else {
                        files.append(url)
                    }
                } else if unsupportedImageExtensions.contains(ext) {
                    problems.append(SkippedFile(path: url.display, reason: "unsupported image format .\(ext) (use JPEG, PNG, BMP or WebP)"))
                } else {
                    problems.append(SkippedFile(path: url.display, reason: "not an image file" + (ext.isEmpty ? "" : " (.\(ext))")))
                }
            case .other:
                problems.append(SkippedFile(path: url.display, reason: "not a regular file (device, pipe or socket)"))
            case .failed(let reason):
                problems.append(SkippedFile(path: url.display, reason: reason))
            }
        }
    }

    /// Non-hidden names in a folder as the bytes the file system has, sorted by their shown form; nil if
    /// the folder cannot be opened (errno set).
    static func readNames(_ folder: FileName) -> [FileName]? {
        guard let dir = folder.withCString({ opendir($0) }) else { return nil }
        defer { closedir(dir) }
        var names: [FileName] = []
        while let entry = readdir(dir) {
            let bytes = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: UInt8.self, capacity: 256) { Array(UnsafeBufferPointer(start: $0, count: strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)))) }
            }
            if bytes.first == UInt8(ascii: ".") { continue }   // ., .., and hidden files such as .DS_Store
            names.append(FileName(bytes: bytes))
        }
        return names.sorted { $0.display < $1.display }
    }

    enum FileKind {
        case directory, regular(size: Int), other, failed(String)

        /// stat() following symlinks; failures become readable reasons.
        static func of(_ path: FileName) -> FileKind {
            var info = stat()
            if path.withCString({ stat($0, &info) }) != 0 {
                let code = errno
                var link = stat()
                let isLink = path.withCString({ lstat($0, &link) }) == 0 && (link.st_mode & S_IFMT) == S_IFLNK
                switch code {
                case ELOOP: return .failed("symlink loop (too many levels of symbolic links)")
                case ENOENT where isLink: return .failed("broken symbolic link (target does not exist)")
                default: return .failed("cannot read: \(String(cString: strerror(code)).lowercased())")
                }
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: return .directory
            case S_IFREG: return .regular(size: Int(info.st_size))
            default: return .other
            }
        }
    }

    /// (device, inode): identifies a folder however it is reached, to stop symlink cycles.
    struct FileID: Hashable {
        let device: UInt64
        let inode: UInt64
        static func of(_ path: FileName) -> FileID? {
            var info = stat()
            guard path.withCString({ stat($0, &info) }) == 0 else { return nil }
            return FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }
    }
}
