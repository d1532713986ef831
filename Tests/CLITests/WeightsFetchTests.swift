import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `extract weights fetch` against a local HTTP server (no network needed): full download, resume
/// after a cut connection, digest mismatch, unreachable host; and the shape of `weights list --json`.
final class WeightsFetchTests: XCTestCase {
    /// 200 000 bytes of a fixed pseudo-random sequence (so a resume error cannot hide in zeros).
    static let blob: Data = {
        var state: UInt32 = 12345
        return Data((0..<200_000).map { _ in state = state &* 1_664_525 &+ 1_013_904_223; return UInt8(state >> 24) })
    }()

    var server: TinyHTTPServer!
    var cache: URL!

    override func setUpWithError() throws {
        _ = try CLI.binary("extract")
        server = try TinyHTTPServer(files: ["/blob.bin": Self.blob])
        cache = try CLI.temporaryDirectory()
    }

    override func tearDown() {
        server?.stop()
        if let cache { try? FileManager.default.removeItem(at: cache) }
    }

    func fetch(_ extra: [String], url: String? = nil) throws -> CLI.Result {
        try CLI.run("extract", ["weights", "fetch", "vgg16", "--url", url ?? "http://127.0.0.1:\(server.port)/blob.bin",
                                "--file-name", "blob.bin", "--cache", cache.path, "--timeout", "10"] + extra)
    }

    var dest: URL { cache.appendingPathComponent("blob.bin") }
    var partial: URL { cache.appendingPathComponent("blob.bin.partial") }

    func testFullFetchWithCorrectDigestLandsInCache() throws {
        let r = try fetch(["--sha256", try digest("sha256sum", Self.blob)])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: dest), Self.blob)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
        XCTAssertNil(server.requests.last?.range, "a fresh download must not send Range")

        // Fetching again finds it in the cache and does not download.
        let before = server.requests.count
        let again = try fetch(["--sha256", try digest("sha256sum", Self.blob)])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("already cached"), again.stdout)
        XCTAssertEqual(server.requests.count, before)
    }

    func testMD5DigestIsAccepted() throws {
        let r = try fetch(["--md5", try digest("md5sum", Self.blob)])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: dest), Self.blob)
    }

    func testResumesAfterCutConnection() throws {
        let sha = try digest("sha256sum", Self.blob)
        server.cutAfter = 70_000
        let first = try fetch(["--sha256", sha])
        XCTAssertNotEqual(first.status, 0)
        XCTAssertTrue(first.stderr.contains("interrupted"), first.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest.path))
        let kept = try Data(contentsOf: partial)
        XCTAssertGreaterThan(kept.count, 0)
        XCTAssertLessThan(kept.count, Self.blob.count)
        XCTAssertEqual(kept, Self.blob.prefix(kept.count))

        let second = try fetch(["--sha256", sha])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(server.requests.last?.range, "bytes=\(kept.count)-")
        XCTAssertEqual(try Data(contentsOf: dest), Self.blob)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
    }

    func testWrongChecksumIsRejectedAndPartialRemoved() throws {
        let wrong = String(repeating: "ab", count: 32)
        let r = try fetch(["--sha256", wrong])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("expected sha256:\(wrong)"), r.stderr)
        XCTAssertTrue(r.stderr.contains(try digest("sha256sum", Self.blob)), "names the actual digest: \(r.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest.path))
    }

    func testDigestContradictingThePublishedPrefixIsRefused() throws {
        // Stored under torchvision's published name, the file must start with its sha256 prefix 397923af.
        let r = try CLI.run("extract", ["weights", "fetch", "vgg16", "--source", "torchvision", "--cache", cache.path,
                                        "--url", "http://127.0.0.1:\(server.port)/blob.bin",
                                        "--sha256", try digest("sha256sum", Self.blob)])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("contradicts"), r.stderr)
        XCTAssertTrue(server.requests.isEmpty)
    }

    func testUnreachableHostFailsFastNamingTheCachePath() throws {
        let port = server.port
        server.stop()  // nothing listens there any more: connection refused
        let start = Date()
        let r = try fetch(["--sha256", String(repeating: "0", count: 64)], url: "http://127.0.0.1:\(port)/blob.bin")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 8)
        XCTAssertTrue(r.stderr.contains("cannot reach"), r.stderr)
        XCTAssertTrue(r.stderr.contains(dest.path), "names where to put the file by hand: \(r.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path), "no empty partial file is left")
    }

    func testListJSONShape() throws {
        // A published torchvision name in the cache shows as present; the cache comes from the environment.
        try Data("x".utf8).write(to: cache.appendingPathComponent("vgg16-397923af.pth"))
        let r = try CLI.run("extract", ["weights", "list", "--json"], environment: ["WORKBENCH_WEIGHTS_DIR": cache.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(root["cache"] as? String, cache.path)
        let backbones = try XCTUnwrap(root["backbones"] as? [[String: Any]])
        let ids = Set(backbones.compactMap { $0["backbone"] as? String })
        XCTAssertTrue(ids.isSuperset(of: ["efficientnet_lite0", "vgg16", "resnet50", "resnet101", "efficientnet_b0"]), "\(ids)")
        var present: [String] = []
        for b in backbones {
            let files = try XCTUnwrap(b["files"] as? [[String: Any]])
            XCTAssertFalse(files.isEmpty, "\(b["backbone"] ?? "?") has published files")
            for f in files {
                for key in ["source", "fileName", "origin", "note", "path"] { XCTAssertTrue(f[key] is String, "\(key) in \(f)") }
                XCTAssertTrue(f["present"] is Bool)
                XCTAssertTrue(f.keys.contains("url") && f.keys.contains("bytes"), "url and bytes are null when unknown: \(f)")
                let d = try XCTUnwrap(f["digest"] as? [String: Any])
                XCTAssertTrue(["sha256", "sha256-prefix", "md5"].contains(d["algorithm"] as? String ?? ""), "\(d)")
                XCTAssertFalse((d["value"] as? String ?? "").isEmpty)
                if f["present"] as? Bool == true { present.append(f["fileName"] as? String ?? "") }
            }
        }
        XCTAssertEqual(present, ["vgg16-397923af.pth"])
        let lite = try XCTUnwrap(backbones.first { $0["backbone"] as? String == "efficientnet_lite0" }?["files"] as? [[String: Any]])
        XCTAssertEqual(lite.first?["bytes"] as? Int, 18_826_032)
        XCTAssertEqual((lite.first?["digest"] as? [String: Any])?["value"] as? String,
                       "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
    }

    /// Digest by coreutils (`sha256sum`, `md5sum`): the test target links no crypto library.
    func digest(_ tool: String, _ data: Data) throws -> String {
        let file = cache.appendingPathComponent("digest-input-\(UUID().uuidString)")
        try data.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/\(tool)")
        p.arguments = [file.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return String(text.prefix { $0.isHexDigit })
    }
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 (POSIX sockets): GET with `Range: bytes=N-`, one
/// request per connection, and on demand a response cut after `cutAfter` body bytes.
final class TinyHTTPServer: @unchecked Sendable {
    struct Request { let path: String; let range: String? }

    let port: UInt16
    private let files: [String: Data]
    private let listener: Int32
    private let lock = NSLock()
    private var stopped = false
    private var _requests: [Request] = []
    private var _cutAfter: Int?
    private var thread: Thread?
    private let exited = DispatchSemaphore(value: 0)

    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return _requests }
    /// Cuts the next response after this many body bytes (then resets).
    var cutAfter: Int? {
        get { lock.lock(); defer { lock.unlock() }; return _cutAfter }
        set { lock.lock(); _cutAfter = newValue; lock.unlock() }
    }

    init(files: [String: Data]) throws {
        self.files = files
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("cannot create a socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { close(fd); throw XCTSkip("cannot listen on 127.0.0.1") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    func stop() {
        lock.lock()
        let already = stopped
        stopped = true
        lock.unlock()
        if !already { exited.wait(); close(listener) }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func serve() {
        defer { exited.signal() }
        while !isStopped {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let conn = accept(listener, nil, nil)
            if conn < 0 { continue }
            handle(conn)
            close(conn)
        }
    }

    private func handle(_ conn: Int32) {
        var head = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while head.range(of: Data("\r\n\r\n".utf8)) == nil {
            let n = recv(conn, &buf, buf.count, 0)
            if n <= 0 { return }
            head.append(buf, count: n)
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        let path = parts.count > 1 ? String(parts[1]) : "/"
        let range = lines.dropFirst().first { $0.lowercased().hasPrefix("range:") }
            .map { $0.dropFirst("range:".count).trimmingCharacters(in: .whitespaces) }
        lock.lock()
        _requests.append(Request(path: path, range: range))
        let cut = _cutAfter
        _cutAfter = nil
        lock.unlock()

        guard let file = files[path] else {
            send(conn, Data("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        var start = 0
        if let range, range.hasPrefix("bytes="), range.hasSuffix("-"),
           let n = Int(range.dropFirst("bytes=".count).dropLast()) {
            start = n
        }
        if start >= file.count && start > 0 {
            send(conn, Data("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\(file.count)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        let body = file.subdata(in: start..<file.count)
        let status = start > 0 ? "206 Partial Content" : "200 OK"
        var header = "HTTP/1.1 \(status)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n"
        if start > 0 { header += "Content-Range: bytes \(start)-\(file.count - 1)/\(file.count)\r\n" }
        header += "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        send(conn, Data(header.utf8))
        send(conn, cut.map { body.prefix($0) } ?? body)
    }

    private func send(_ conn: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var off = 0
            while off < raw.count {
                let n = Glibc.send(conn, base + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }
}
