import WorkbenchSupport
/// The backbones the workbench offers, each defined by its `BackboneSpec`.
public enum Backbones {
    public static let all: [BackboneSpec] = EfficientNetLite.Variant.allCases.map(EfficientNetLite.spec) + experiment

    /// Looks a backbone up by the spellings users type: `efficientnet_lite0`, `EfficientNet-Lite0`,
    /// `efficientnetlite0` all name the same one.
    public static func named(_ name: String) throws -> BackboneSpec {
        let key = BackboneName.key(name)
        if let spec = all.first(where: { BackboneName.key($0.id) == key || BackboneName.key($0.displayName) == key }) {
            return spec
        }
        throw BackboneError.unknownBackbone(name, known: all.map(\.id))
    }
}
