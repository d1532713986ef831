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

    /// Settings that do not apply to a combination do not multiply its trials: `bn_mode` and
    /// `block_lr` without `unfreeze`, `threshold` and `rounds` without `pseudo_label`.
    func testIrrelevantSettingsShareOneTrial() throws {
        let file = try CLI.temporaryDirectory().appendingPathComponent("s.yaml")
        try """
        extractions: [efficientnet_lite0]
        parameters:
          unfreeze: [0, 1]
          bn_mode: [frozen, train]
          block_lr: [0, 0.0001]
        """.write(to: file, atomically: true, encoding: .utf8)
        let r = try CLI.run("train-head", ["trial-keys", file.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let trials = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("sweep ") }
        XCTAssertEqual(trials.count, 1 + 2 * 2, r.stdout)   // unfreeze 0 once, unfreeze 1 with every bn_mode x block_lr
        XCTAssertEqual(trials.filter { $0.contains("bn_mode") || $0.contains("block_lr") }.count, 3, r.stdout)

        try """
        extractions: [efficientnet_lite0]
        parameters:
          pseudo_label: [false, true]
          threshold: [0.8, 0.95]
          rounds: [1, 3]
        """.write(to: file, atomically: true, encoding: .utf8)
        let p = try CLI.run("train-head", ["trial-keys", file.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(p.stdout.split(separator: "\n").filter { !$0.hasPrefix("sweep ") }.count, 1 + 2 * 2, p.stdout)
    }

    /// One entry of `train-head head-settings` (the settings table).
    struct Setting: Decodable {
        let key: String, option: String, kind: String, expected: String, help: String, `default`: String
        let choices: [String]?

        /// A value other than the default: as written, and as the config JSON holds it.
        var changed: (text: String, json: AnyHashable) {
            switch kind {
            case "integer": return Int(`default`).map { ("\($0 + 1)", $0 + 1) } ?? ("1", 1)   // default "all": copy 1
            case "number": let v = (Double(`default`) ?? 0) == 0 ? 0.5 : Double(`default`)! / 2; return ("\(v)", v)
            case "flag": return `default` == "yes" ? ("false", false) : ("true", true)
            default: let c = choices!.first { $0 != `default` }!; return (c, c)
            }
        }
    }

    func settings() throws -> [Setting] {
        let r = try CLI.run("train-head", ["head-settings"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode([Setting].self, from: Data(r.stdout.utf8))
    }

    /// Every entry of the settings table is in both help pages (option, help, default), is an option
    /// of `train-head`, and is a key of sweep files whose value reaches the trial's config JSON
    /// (YAML -> HeadConfig's Decodable -> HeadConfig's Encodable).
    func testEverySettingIsInHelpIsAnOptionAndASweepKeyAndRoundTripsThroughTheConfigJSON() throws {
        let all = try settings()
        XCTAssertGreaterThanOrEqual(all.count, 13)
        XCTAssertEqual(Set(all.map(\.key)).count, all.count)
        XCTAssertTrue(all.contains { $0.key == "solver" })

        func flat(_ s: String) -> String { s.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        for page in [["--help"], ["train", "--help"]] {
            let help = try CLI.run("train-head", page)
            XCTAssertEqual(help.status, 0, help.stderr)
            let text = flat(help.stdout)
            for s in all {
                let standard = s.kind == "flag" ? (s.default == "yes" ? s.option : "--no-" + s.option.dropFirst(2)) : s.default
                for part in [s.option, flat(s.help), "default: \(standard))"] {
                    XCTAssertTrue(text.contains(part), "`train-head \(page.joined(separator: " "))` lacks \(part) of \(s.key)")
                }
            }
        }

        // Every option at a value other than its default: accepted (the run then stops at the missing store).
        let dir = try CLI.temporaryDirectory()
        var arguments = ["--store", dir.appendingPathComponent("none.sqlite").path, "--backbone", "efficientnet_lite0"]
        for s in all { arguments += s.kind == "flag" ? ["\(s.option)=\(s.changed.text)"] : [s.option, s.changed.text] }
        let train = try CLI.run("train-head", arguments)
        XCTAssertNotEqual(train.status, 0)
        XCTAssertTrue(train.stderr.contains("does not exist"), "the options parse: \(train.stderr)")

        // The same values as a sweep file's defaults.
        let file = dir.appendingPathComponent("all.yaml")
        try ("extractions: [efficientnet_lite0]\ndefaults:\n" + all.map { "  \($0.key): \($0.changed.text)\n" }.joined())
            .write(to: file, atomically: true, encoding: .utf8)
        let keys = try CLI.run("train-head", ["trial-keys", file.path])
        XCTAssertEqual(keys.status, 0, keys.stderr)
        let trials = keys.stdout.split(separator: "\n").filter { !$0.hasPrefix("sweep ") }
        XCTAssertEqual(trials.count, 1, keys.stdout)
        let json = String(trials[0].split(separator: " ", maxSplits: 1)[1])
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for s in all {
            let got = config[s.key]
            switch s.changed.json {
            case let d as Double: XCTAssertEqual(got as? Double ?? .nan, d, accuracy: abs(d) * 1e-12, s.key)
            case let i as Int: XCTAssertEqual(got as? Int, i, s.key)
            case let b as Bool: XCTAssertEqual(got as? Bool, b, s.key)
            case let t as String: XCTAssertEqual(got as? String, t, s.key)
            default: XCTFail(s.key)
            }
        }
    }
}
