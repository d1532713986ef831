/// Every published weights file the backbones accept (each backbone lists its own in its
/// `BackboneSpec.published`), for `extract weights list|fetch`.
public enum WeightsRegistry {
    /// The published files of one backbone (by its `BackboneSpec.id`), preferred first.
    public static func published(for backbone: String) -> [PublishedWeights] {
        Backbones.all.first { $0.id == backbone }?.published ?? []
    }

    /// Registered source names, for help texts.
    public static let sourceNames = ["keras", "torchvision", "timm", "pypi"]
}
