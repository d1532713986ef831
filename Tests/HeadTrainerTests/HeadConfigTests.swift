import Foundation
import HeadTrainerCore
import XCTest

/// HeadConfig's JSON is kept in every stored head: what earlier versions wrote must still read the
/// same, and what this version writes must be byte for byte what they wrote (sweep trial keys hash it).
final class HeadConfigTests: XCTestCase {
    /// Recorded with the code before the settings table (issue #17).
    static let defaultJSON = #"{"batch_size":32,"batchnorm":true,"class_weights":"none","dropout":0.2,"epochs":100,"hidden":256,"l2":0.0001,"lr":0.0001,"patience":5,"seed":42,"solver":"auto","val_split":0.2}"#
    static let changedJSON = #"{"augmented":2,"batch_size":8,"batchnorm":false,"class_weights":"balanced","dropout":0.5,"epochs":7,"hidden":0,"l2":0.003,"lr":0.02,"patience":0,"seed":9,"solver":"lbfgs","val_split":0.1}"#

    static var changed: HeadConfig {
        var c = HeadConfig()
        c.hidden = 0; c.dropout = 0.5; c.l2 = 0.003; c.batchnorm = false; c.lr = 0.02; c.batchSize = 8; c.epochs = 7
        c.patience = 0; c.valSplit = 0.1; c.augmented = 2; c.classWeights = .balanced; c.solver = .lbfgs; c.seed = 9
        return c
    }

    func json(_ c: HeadConfig) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(c), as: UTF8.self)
    }

    func decode(_ text: String) throws -> HeadConfig { try JSONDecoder().decode(HeadConfig.self, from: Data(text.utf8)) }

    func testEncodingIsByteIdenticalToEarlierVersions() throws {
        XCTAssertEqual(try json(HeadConfig()), Self.defaultJSON)
        XCTAssertEqual(try json(Self.changed), Self.changedJSON)
    }

    func testStoredJSONDecodesWithDefaultsForMissingKeys() throws {
        XCTAssertEqual(try decode(Self.defaultJSON), HeadConfig())
        XCTAssertEqual(try decode(Self.changedJSON), Self.changed)
        XCTAssertEqual(try decode("{}"), HeadConfig())
        var linear = HeadConfig()
        linear.hidden = 0
        XCTAssertEqual(try decode(#"{"hidden":0,"augmented":null,"unknown_key":1}"#), linear)
        XCTAssertThrowsError(try decode(#"{"hidden":"wide"}"#))
    }

    /// Each setting at a value other than its default, written as on the command line, survives
    /// HeadConfig's JSON; text that is no value of its type is refused.
    func testEverySettingRoundTripsThroughJSON() throws {
        XCTAssertEqual(Set(HeadConfig.settings.map(\.key)).count, HeadConfig.settings.count)
        for s in HeadConfig.settings {
            let text: String
            switch s.kind {
            case .integer: text = Int(s.defaultText).map { "\($0 + 1)" } ?? "1"
            case .number: text = "\(Double(s.defaultText).map { $0 == 0 ? 0.5 : $0 / 2 } ?? 1)"
            case .flag: text = s.defaultText == "yes" ? "no" : "yes"
            case .choice(let names): text = names.first { $0 != s.defaultText }!
            }
            var c = HeadConfig()
            XCTAssertTrue(s.parse(&c, text), s.key)
            XCTAssertNotEqual(c, HeadConfig(), s.key)
            let encoded = try json(c)
            XCTAssertTrue(encoded.contains("\"\(s.key)\":"), encoded)
            XCTAssertEqual(try decode(encoded), c, s.key)
            XCTAssertFalse(s.parse(&c, "[\(text)]"), s.key)
        }
    }

    /// Values written by hand read as earlier versions read them.
    func testHandWrittenValues() throws {
        var c = HeadConfig()
        for (key, text) in [("hidden", "64.0"), ("lr", "1e-3"), ("augmented", "all"), ("batchnorm", "off"), ("seed", "7")] {
            XCTAssertTrue(try XCTUnwrap(HeadConfig.setting(key)).parse(&c, text), key)
        }
        XCTAssertEqual(c, HeadConfig { $0.hidden = 64; $0.lr = 1e-3; $0.augmented = nil; $0.batchnorm = false; $0.seed = 7 })
        XCTAssertFalse(try XCTUnwrap(HeadConfig.setting("hidden")).parse(&c, "64.5"))
        XCTAssertEqual(HeadConfig.setting("solver")?.expected, "adam, lbfgs or auto")
    }
}
