@testable import FeatureStore
@testable import HeadTrainer
import Foundation
import Imaging
import WorkbenchSupport
import XCTest
import Yams

/// Existing stores must resume: every identity key in Fixtures/identity.json was computed by the code
/// before the shared canonical encoder (commit 1ef804b, Foundation's JSONSerialization and JSONEncoder,
/// the policy's hand-written JSON); today's code must give the same bytes.
final class IdentityTests: XCTestCase {
    struct Fixture: Decodable {
        struct SettingsCase: Decodable { let settings: ExtractionSettings; let settingsKey: String; let storedPolicy: String; let augmentationHash: String }
        struct PolicyCase: Decodable { let policy: AugmentationPolicy; let canonicalJSON: String; let hash: String }
        struct TextCase: Decodable { let text: String; let canonical: String? }
        struct Trial: Decodable { let config: String; let key: String }
        struct SweepCase: Decodable { let name: String; let yaml: String; let canonicalJSON: String; let resumeForm: String; let trials: [Trial] }
        let policies: [PolicyCase]
        let policyTexts: [TextCase]
        let settings: [SettingsCase]
        let trialSettingsKey: String
        let sweeps: [SweepCase]
    }

    var fixture: Fixture!

    override func setUpWithError() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "identity", withExtension: "json", subdirectory: "Fixtures"))
        fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testAugmentationPolicies() {
        XCTAssertEqual(fixture.policies.count, 11)
        for p in fixture.policies {
            XCTAssertEqual(p.policy.canonicalJSON, p.canonicalJSON)
            XCTAssertEqual(p.policy.hash, p.hash, p.canonicalJSON)
        }
    }

    /// Policy texts as the store keeps them (re-written canonically), valid or not.
    func testStoredPolicyTexts() {
        XCTAssertEqual(fixture.policyTexts.count, 28)
        for t in fixture.policyTexts { XCTAssertEqual(FeatureStore.canonicalJSON(t.text), t.canonical, t.text) }
    }

    func testExtractionSettingsKeys() throws {
        XCTAssertEqual(fixture.settings.count, 18)
        for s in fixture.settings {
            XCTAssertEqual(try FeatureStore.settingsKey(s.settings), s.settingsKey, "\(s.settings)")
            let stored = try XCTUnwrap(FeatureStore.canonicalJSON(s.settings.augmentationPolicy))
            XCTAssertEqual(stored, s.storedPolicy)
            XCTAssertEqual(SHA256Digest.hex(stored), s.augmentationHash)
        }
    }

    /// Sweep identities (what a resumed sweep is compared by) and trial keys (what finished trials are found by).
    func testSweepsAndTrialKeys() throws {
        XCTAssertEqual(fixture.sweeps.map(\.trials.count), [38, 1, 24, 21])
        for sweep in fixture.sweeps {
            let spec = try YAMLDecoder().decode(SweepSpec.self, from: sweep.yaml,
                                                userInfo: [.sweepPath: "\(sweep.name).yaml", .sweepName: sweep.name])
            XCTAssertEqual(spec.canonicalJSON, sweep.canonicalJSON, sweep.name)
            XCTAssertEqual(SweepCommand.canonical(spec.canonicalJSON, ignoringTrials: true), sweep.resumeForm, sweep.name)
            let configs = try spec.configurations()
            XCTAssertEqual(configs.map(SweepSpec.json), sweep.trials.map(\.config), sweep.name)
            XCTAssertEqual(configs.map { SweepSpec.trialKey(extractionSettingsKey: fixture.trialSettingsKey, config: $0) },
                           sweep.trials.map(\.key), sweep.name)
        }
    }
}
