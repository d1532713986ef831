import Foundation
import XCTest

/// The head settings as the command line, sweep files and stored trials see them.
final class HeadSettingsTests: XCTestCase {
    static let goldens = CLI.repo.appendingPathComponent("tools/goldens/sweeps")

    /// Trial keys and each sweep's canonical JSON, as recorded by tools/goldens/sweep_trial_keys.sh
    /// with earlier code: a sweep interrupted in an existing store resumes only if they are unchanged.
    func testTrialKeysAndCanonicalJSONAreTheRecordedOnes() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.goldens.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 6)
        for name in files {
            let yaml = Self.goldens.appendingPathComponent(name)
            let r = try CLI.run("train-head", ["trial-keys", yaml.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let recorded = try String(contentsOf: yaml.deletingPathExtension().appendingPathExtension("keys"), encoding: .utf8)
            let got = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let want = recorded.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(got.count, want.count, name)
            for (g, w) in zip(got, want) where g != w { XCTFail("\(name):\n got  \(g)\n want \(w)") }
        }
    }
}
