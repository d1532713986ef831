import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One image of a dataset: where it is, its class, and its predefined split ("train"/"test"), if any.
public struct DatasetItem: Hashable, Codable, Sendable {
    public let path: URL
    public let className: String
    public let classIndex: Int
    /// "train" or "test" for datasets with predefined split folders; nil for `DIR/<class>/*` datasets.
    public let split: String?

    public init(path: URL, className: String, classIndex: Int, split: String?) {
        self.path = path
        self.className = className
        self.classIndex = classIndex
        self.split = split
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

    /// Scans `dir`. Throws `ImagingError.badDataset` when the folder is missing, has no class folders, or
    /// has no usable image at all (before any decoding work starts).
    public static func scan(_ dir: URL) throws -> DatasetScan {
        let root = dir.standardizedFileURL
        var problems: [SkippedFile] = []
        guard case .directory = FileKind.of(root.path) else {
            throw ImagingError.badDataset(path: root.path, reason: "not a folder (or missing); expected DIR/<class>/*.jpg or DIR/train/<class>/*.jpg")
        }
        let top = try listFolder(root, problems: &problems)
        let splitDirs = top.filter { $0.isDirectory && splitNames[$0.name] != nil }

        // (split, class folder) pairs.
        var classFolders: [(split: String?, name: String, url: URL)] = []
        var splits: [String] = []
        if splitDirs.isEmpty {
            for entry in top {
                if entry.isDirectory {
                    classFolders.append((nil, entry.name, entry.url))
                } else if isImageName(entry.name) {
                    problems.append(SkippedFile(path: entry.url.path, reason: "image outside any class folder: ignored (put it in DIR/<class>/)"))
                }
            }
        } else {
            var used: [String: String] = [:]   // normalised split -> folder name
            for entry in splitDirs.sorted(by: { $0.name.count < $1.name.count || ($0.name.count == $1.name.count && $0.name < $1.name) }) {
                let split = splitNames[entry.name]!
                if let other = used[split] {
                    problems.append(SkippedFile(path: entry.url.path, reason: "second \(split) folder ignored (already using \(other)/)"))
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
                    problems.append(SkippedFile(path: child.url.path, reason: "image outside any class folder: ignored"))
                }
            }
            splits = ["train", "test"].filter { used[$0] != nil }
            for entry in top where entry.isDirectory && splitNames[entry.name] == nil {
                problems.append(SkippedFile(path: entry.url.path, reason: "folder ignored: not a split folder (expected train/ and test/)"))
            }
        }
        if classFolders.isEmpty {
            throw ImagingError.badDataset(path: root.path, reason: "no class folders found; expected DIR/<class>/*.jpg or DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg")
        }

        // Collect candidate files per class folder.
        var found: [(split: String?, className: String, files: [URL])] = []
        for folder in classFolders {
            var visited = Set<FileID>()
            if let id = FileID.of(folder.url.path) { visited.insert(id) }
            var files: [URL] = []
            collect(folder.url, into: &files, visited: &visited, problems: &problems)
            if files.isEmpty {
                problems.append(SkippedFile(path: folder.url.path, reason: "empty class folder: no image files (class left out)"))
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
            for file in group.files.sorted(by: { $0.path < $1.path }) {
                items.append(DatasetItem(path: file, className: group.className, classIndex: classIndex, split: group.split))
            }
        }
        return DatasetScan(root: root, classes: classes, items: items, problems: problems, splits: splits)
    }

    // MARK: File system helpers (POSIX, so every failure has its errno text)

    static func isImageName(_ name: String) -> Bool {
        imageExtensions.contains((name as NSString).pathExtension.lowercased())
    }

    struct Entry {
        let name: String
        let url: URL
        let isDirectory: Bool
    }

    /// Non-hidden entries of a folder, sorted by name; a folder that cannot be listed is a dataset error
    /// at the top levels (the caller asked for it) and a recorded problem below.
    static func listFolder(_ url: URL, problems: inout [SkippedFile]) throws -> [Entry] {
        guard let names = readNames(url.path) else {
            throw ImagingError.badDataset(path: url.path, reason: "cannot list folder: \(ImageCodec.errnoText())")
        }
        return names.compactMap { name in
            let child = url.appendingPathComponent(name)
            switch FileKind.of(child.path) {
            case .directory: return Entry(name: name, url: child, isDirectory: true)
            case .regular: return Entry(name: name, url: child, isDirectory: false)
            default: return nil
            }
        }
    }

    /// Recursively collects candidate image files, recording everything it leaves out.
    static func collect(_ folder: URL, into files: inout [URL], visited: inout Set<FileID>, problems: inout [SkippedFile]) {
        guard let names = readNames(folder.path) else {
            problems.append(SkippedFile(path: folder.path, reason: "cannot list folder: \(ImageCodec.errnoText())"))
            return
        }
        for name in names {
            let url = folder.appendingPathComponent(name)
            let ext = (name as NSString).pathExtension.lowercased()
            switch FileKind.of(url.path) {
            case .directory:
                guard let id = FileID.of(url.path), visited.insert(id).inserted else {
                    problems.append(SkippedFile(path: url.path, reason: "folder already visited through another path (symlink loop or duplicate link): skipped"))
                    continue
                }
                collect(url, into: &files, visited: &visited, problems: &problems)
            case .regular(let size):
                if imageExtensions.contains(ext) {
                    if size == 0 {
                        problems.append(SkippedFile(path: url.path, reason: "empty file (0 bytes)"))
                    } else {
                        files.append(url)
                    }
                } else if unsupportedImageExtensions.contains(ext) {
                    problems.append(SkippedFile(path: url.path, reason: "unsupported image format .\(ext) (use JPEG, PNG, BMP or WebP)"))
                } else {
                    problems.append(SkippedFile(path: url.path, reason: "not an image file" + (ext.isEmpty ? "" : " (.\(ext))")))
                }
            case .other:
                problems.append(SkippedFile(path: url.path, reason: "not a regular file (device, pipe or socket)"))
            case .failed(let reason):
                problems.append(SkippedFile(path: url.path, reason: reason))
            }
        }
    }

    /// Sorted, non-hidden names in a folder; nil if it cannot be opened (errno set).
    static func readNames(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(".") { continue }   // ., .., and hidden files such as .DS_Store
            names.append(name)
        }
        return names.sorted()
    }

    enum FileKind {
        case directory, regular(size: Int), other, failed(String)

        /// stat() following symlinks; failures become readable reasons.
        static func of(_ path: String) -> FileKind {
            var info = stat()
            if stat(path, &info) != 0 {
                let code = errno
                var link = stat()
                let isLink = lstat(path, &link) == 0 && (link.st_mode & S_IFMT) == S_IFLNK
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
        static func of(_ path: String) -> FileID? {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            return FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }
    }
}
