/// Backbone names as users type them: `efficientnet_lite0`, `EfficientNet-Lite0` and `efficientnetlite0`
/// are one backbone. Both programs compare names through this key (the extractor's registry, the head
/// trainer's store lookups and report).
public enum BackboneName {
    /// Lowercase letters and digits only.
    public static func key(_ name: String) -> String { name.lowercased().filter { $0.isLetter || $0.isNumber } }
}
