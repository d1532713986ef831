import Foundation

/// Everything that can go wrong in the image pipeline. Each message names the file or folder and says
/// what to do, because these end up in a run's skip report read by people, not programs.
public enum ImagingError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read from disk (permissions, vanished, symlink loop, is a directory...).
    case unreadable(path: String, reason: String)
    /// The bytes are not a usable image: empty, text, unsupported format, corrupt, truncated, too large.
    case badImage(path: String, kind: BadImageKind, reason: String)
    /// The dataset folder itself is unusable.
    case badDataset(path: String, reason: String)
    /// An augmentation policy has an invalid range or could not be parsed.
    case invalidPolicy(reason: String)
    /// A pipeline or geometry argument is out of range (size <= 0, batch size <= 0, ...).
    case invalidArgument(String)
    /// Writing an output file failed.
    case writeFailed(path: String, reason: String)

    /// Why an image was refused; lets callers count failures by kind.
    public enum BadImageKind: String, Codable, Sendable {
        case empty, notAnImage = "not-an-image", unsupportedFormat = "unsupported-format", badHeader = "bad-header"
        case zeroDimension = "zero-dimension", tooLarge = "too-large", truncated, corrupt
    }

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read file: \(reason). Check that it exists and is readable, or remove it."
        case let .badImage(path, _, reason):
            return "\(path): \(reason). The file was skipped; fix or remove it."
        case let .badDataset(path, reason):
            return "\(path): \(reason)"
        case let .invalidPolicy(reason):
            return "invalid augmentation policy: \(reason)"
        case let .invalidArgument(text):
            return "invalid argument: \(text)"
        case let .writeFailed(path, reason):
            return "\(path): cannot write: \(reason)"
        }
    }
}
