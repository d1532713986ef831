/// The backbones the workbench offers, each defined by its `BackboneSpec`.
public enum Backbones {
    public static let all: [BackboneSpec] = [EfficientNetLite.spec(.lite0)] + experiment

    /// Looks a backbone up by the spellings users type: `efficientnet_lite0`, `EfficientNet-Lite0`,
    /// `efficientnetlite0` all name the same one.
    public static func named(_ name: String) throws -> BackboneSpec {
        let key = normalize(name)
        if let spec = all.first(where: { normalize($0.id) == key || normalize($0.displayName) == key }) {
            return spec
        }
        throw BackboneError.unknownBackbone(name, known: all.map(\.id))
    }

    static func normalize(_ s: String) -> String {
        s.lowercased().filter { $0.isLetter || $0.isNumber }
    }
}
