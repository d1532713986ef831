import Foundation

/// One extraction a head was trained on, as its config JSON names it.
///
/// A head on concatenated features (`train-head --backbone a+b`) keeps its first extraction in
/// `heads.extraction_id` and the whole list, in feature order, under the config's `extractions` key.
/// Extractions are named by settings key (unique within the head's dataset), not by id, so the list
/// stays right when `extract store merge` renumbers extractions. A head without the key was trained
/// on `extraction_id` alone.
public struct HeadInput: Codable, Hashable, Sendable {
    public var backbone: String
    public var settingsKey: String

    public init(_ e: ExtractionRecord) { backbone = e.settings.backbone; settingsKey = e.settingsKey }

    enum CodingKeys: String, CodingKey { case backbone, settingsKey = "settings_key" }

    /// The config JSON key holding the list.
    public static let configKey = "extractions"
}

extension HeadRecord {
    /// The extractions listed in the config JSON (nil for a head on `extractionID` alone).
    public var inputs: [HeadInput]? {
        struct Listed: Decodable { let extractions: [HeadInput]? }
        return (try? JSONDecoder().decode(Listed.self, from: Data(config.utf8)))?.extractions
    }
}

extension FeatureStore {
    /// Every extraction `head` was trained on, in the order its features were concatenated.
    public func extractions(of head: HeadRecord) throws -> [ExtractionRecord] {
        let what = "head \(head.id.map(String.init) ?? "?")"
        guard let primary = try extraction(id: head.extractionID) else {
            throw StoreError.invalidArgument(path: path, reason: "\(what) refers to extraction \(head.extractionID), which the store no longer has")
        }
        guard let inputs = head.inputs, !inputs.isEmpty else { return [primary] }
        let candidates = try extractions(datasetID: primary.settings.datasetID)
        return try inputs.map { input in
            guard let e = candidates.first(where: { $0.settingsKey == input.settingsKey }) else {
                throw StoreError.invalidArgument(path: path, reason: "\(what) was trained on a \(input.backbone) extraction "
                                                 + "(settings key \(input.settingsKey.prefix(12))…) that the store no longer has")
            }
            return e
        }
    }
}
