import FeatureStore
import Foundation
import XCTest

/// Checks of a written `report.html` against the store it came from.
enum ReportChecks {
    /// Every ROC plot's per-class AUCs equal the stored test metrics of its head (the report scores a
    /// head on what it was trained on: concatenated features, or its fine-tuned blocks), and every
    /// confusion-matrix link has its gallery section. Returns the ids of the heads with ROC plots.
    @discardableResult
    static func assertCurvesMatchStoredMetrics(_ html: String, _ db: FeatureStore, file: StaticString = #filePath, line: UInt = #line) throws -> [Int64] {
        var heads: [Int64] = []
        for chunk in html.components(separatedBy: "data-roc=\"").dropFirst() {
            let id = try XCTUnwrap(Int64(chunk.prefix { $0 != "\"" }), file: file, line: line)
            heads.append(id)
            let svg = chunk.components(separatedBy: "</svg>")[0]
            let aucs = svg.components(separatedBy: "data-auc=\"").dropFirst().compactMap { Double($0.prefix { $0 != "\"" }) }
            let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try db.head(id: id).metrics.utf8)) as? [String: Any],
                                        file: file, line: line)
            let perClass = try XCTUnwrap((metrics["test"] as? [String: Any])?["per_class"] as? [[String: Any]], file: file, line: line)
            let stored = perClass.compactMap { $0["auc"] as? Double }
            XCTAssertEqual(aucs.count, stored.count, "head \(id)", file: file, line: line)
            for (a, b) in zip(aucs, stored) { XCTAssertEqual(a, b, accuracy: 1e-4, "head \(id)", file: file, line: line) }
        }
        for link in html.components(separatedBy: "href=\"#errors-").dropFirst() {
            let id = "errors-" + link.prefix { $0 != "\"" }
            XCTAssertTrue(html.contains("id=\"\(id)\""), "confusion link \(id) has no gallery section", file: file, line: line)
        }
        return heads
    }
}
