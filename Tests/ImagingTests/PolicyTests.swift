import Foundation
import XCTest
import Imaging

final class PolicyTests: XCTestCase {
    func testCanonicalJSONAndHash() throws {
        XCTAssertEqual(AugmentationPolicy.standard.canonicalJSON,
                       #"{"contrast":[0.8,1.2],"crop":[0.8,1],"horizontalFlip":0.5,"rotation":[-15,15],"translation":0.1,"version":1,"zoom":[0.9,1.1]}"#)
        XCTAssertEqual(AugmentationPolicy.none.canonicalJSON, #"{"version":1}"#)
        XCTAssertEqual(AugmentationPolicy.standard.hash, ContentHash.sha256Hex(AugmentationPolicy.standard.canonicalJSON))
        XCTAssertEqual(AugmentationPolicy.standard.hash.count, 64)
        XCTAssertNotEqual(AugmentationPolicy.standard.hash, AugmentationPolicy.none.hash)
    }

    func testJSONRoundTripAndKeyOrderIndependence() throws {
        let text = #"{"zoom": [0.9, 1.1], "rotation": [-15, 15.0], "horizontalFlip": 0.5}"#
        let policy = try AugmentationPolicy.fromJSON(Data(text.utf8))
        XCTAssertEqual(policy, AugmentationPolicy(zoom: .init(0.9, 1.1), rotation: .init(-15, 15), horizontalFlip: 0.5))
        let encoded = try JSONEncoder().encode(policy)
        XCTAssertEqual(try AugmentationPolicy.fromJSON(encoded), policy)
        let reordered = try AugmentationPolicy.fromJSON(Data(#"{"horizontalFlip":0.5,"rotation":[-15,15],"zoom":[0.9,1.1]}"#.utf8))
        XCTAssertEqual(reordered.hash, policy.hash)
        XCTAssertEqual(try AugmentationPolicy.fromJSON(Data(AugmentationPolicy.standard.canonicalJSON
            .replacingOccurrences(of: #""version":1,"#, with: "").utf8)), .standard)
    }

    func testInvalidPoliciesAreRejectedWithReasons() {
        for (json, text) in [(#"{"rotaton": [-15, 15]}"#, "unknown key \"rotaton\""),
                             (#"{"zoom": [1.2, 0.9]}"#, "zoom"),
                             (#"{"crop": [0.0, 1.0]}"#, "crop"),
                             (#"{"horizontalFlip": 2}"#, "horizontalFlip"),
                             (#"{"contrast": [1]}"#, "not a valid policy"),
                             (#"[1, 2]"#, "not a valid policy")] {
            XCTAssertThrowsError(try AugmentationPolicy.fromJSON(Data(json.utf8)), json) { error in
                XCTAssertTrue("\(error)".contains(text), "\(json): \(error)")
            }
        }
    }

    func testContentHashIsSHA256() {
        XCTAssertEqual(ContentHash.sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(ContentHash.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
