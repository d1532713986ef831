import Foundation

/// Everything that can go wrong when training, evaluating or loading a head.
///
/// Messages name the offending split/row/file and say what to do, because the usual
/// cause is a feature store written by a different extractor run or configuration.
public enum HeadTrainerError: Error, CustomStringConvertible, Equatable {
    /// `values.count` (or a per-row array) does not match `n * dim` (or `n`).
    case dimensionMismatch(split: String, what: String, expected: Int, actual: Int)
    /// The training data for `split` holds fewer than two distinct classes.
    case singleClass(split: String, classIndex: Int?)
    /// A feature value is NaN or infinite.
    case nonFiniteFeature(split: String, row: Int, column: Int, imageID: Int64)
    /// A split that must hold rows holds none.
    case emptySplit(split: String, reason: String)
    /// A label is negative or not below `classCount`.
    case labelOutOfRange(split: String, row: Int, label: Int32, classCount: Int)
    /// Two rows of the same image disagree about its label.
    case inconsistentImageLabel(split: String, imageID: Int64, first: Int32, second: Int32)
    /// A configuration field has an unusable value.
    case invalidConfig(field: String, value: String, expected: String)
    /// Train and test (or a head and its inputs) disagree on dimension or classes.
    case incompatible(what: String, detail: String)
    /// A serialized head could not be decoded.
    case corruptHead(source: String, detail: String)
    /// Reading or writing a file failed.
    case io(path: String, detail: String)
    /// The training loss became NaN or infinite (fine-tuning): the epoch and the first layer whose
    /// output was not finite.
    case nonFiniteLoss(epoch: Int, layer: String)

    public var description: String {
        switch self {
        case let .dimensionMismatch(split, what, expected, actual):
            return "\(split) features: \(what) has \(actual) entries but \(expected) were expected; "
                + "the arrays of a LabeledFeatures must agree (values = n*dim, one label/image id/aug index per row). "
                + "Re-export the split from the feature store."
        case let .singleClass(split, classIndex):
            let which = classIndex.map { " (only class \($0))" } ?? ""
            return "\(split) split has fewer than two classes\(which); a softmax head needs at least two. "
                + "Check that the feature store holds images of every class for this split."
        case let .nonFiniteFeature(split, row, column, imageID):
            return "\(split) features: row \(row) (image id \(imageID)), column \(column) is NaN or infinite. "
                + "Re-extract the features of that image; the backbone output is corrupt."
        case let .emptySplit(split, reason):
            return "\(split) split is empty: \(reason)."
        case let .labelOutOfRange(split, row, label, classCount):
            return "\(split) features: row \(row) has label \(label), outside 0..<\(classCount). "
                + "classNames must list every class the labels refer to."
        case let .inconsistentImageLabel(split, imageID, first, second):
            return "\(split) features: image id \(imageID) appears with labels \(first) and \(second); "
                + "all augmented copies of an image must share its label. Rebuild the split in the feature store."
        case let .invalidConfig(field, value, expected):
            return "head config: \(field) = \(value) is invalid; expected \(expected)."
        case let .incompatible(what, detail):
            return HeadModelError.incompatible(what: what, detail: detail).description
        case let .corruptHead(source, detail):
            return HeadModelError.corruptHead(source: source, detail: detail).description
        case let .io(path, detail):
            return "\(path): \(detail)."
        case let .nonFiniteLoss(epoch, layer):
            return "training stopped in epoch \(epoch): the loss is NaN or infinite, first at the output of \(layer). "
                + "Lower --block-lr or --lr (or use --bn-mode frozen); nothing of this run was saved."
        }
    }
}

extension HeadTrainerError {
    /// The errors of the shared head reader and inference (`HeadModelError`) as the trainer's.
    init(_ e: HeadModelError) {
        switch e {
        case let .corruptHead(source, detail): self = .corruptHead(source: source, detail: detail)
        case let .incompatible(what, detail): self = .incompatible(what: what, detail: detail)
        case let .nonFiniteFeature(row, column): self = .nonFiniteFeature(split: "predict", row: row, column: column, imageID: -1)
        }
    }

    /// `body`, with a `HeadModelError` it throws turned into the trainer's error.
    static func wrapping<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as HeadModelError { throw HeadTrainerError(e) }
    }
}
