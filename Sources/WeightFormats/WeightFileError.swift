import Foundation

/// One disagreement between a weight file and the shapes a backbone expects (see `StateDict.validate`).
public enum ShapeProblem: Equatable, CustomStringConvertible, Sendable {
    /// The backbone needs this tensor but the file does not have it.
    case missing(name: String, expected: [Int])
    /// The file has this tensor but the backbone does not use it.
    case unexpected(name: String, actual: [Int])
    /// Both have the tensor, with different shapes.
    case wrongShape(name: String, expected: [Int], actual: [Int])

    public var name: String {
        switch self {
        case .missing(let n, _), .unexpected(let n, _), .wrongShape(let n, _, _): return n
        }
    }

    public var description: String {
        switch self {
        case .missing(let n, let e):
            return "missing tensor '\(n)' (expected shape \(e))"
        case .unexpected(let n, let a):
            return "unexpected tensor '\(n)' (shape \(a)) not used by the model"
        case .wrongShape(let n, let e, let a):
            return "tensor '\(n)' has shape \(a), expected \(e)"
        }
    }
}

/// Everything that can go wrong while reading a weight file. Every message names the file and
/// says what to do; none of these is ever reported by crashing.
public enum WeightFileError: Error, CustomStringConvertible {
    /// The file could not be opened or mapped (missing, a directory, no permission...).
    case cannotOpen(file: URL, reason: String)
    /// The first bytes match no supported format.
    case unrecognizedFormat(file: URL, firstBytes: [UInt8])
    /// The file ends before a structure it announces (usually an interrupted download or save).
    case truncated(file: URL, detail: String)
    /// A pickle opcode outside the small set that state dicts use.
    case unsupportedOpcode(file: URL, opcode: UInt8, offset: Int)
    /// A pickle names a global outside the allow-list. Nothing is ever imported or executed.
    case disallowedGlobal(file: URL, module: String, name: String)
    /// The structure is readable but not what a checkpoint should contain.
    case malformed(file: URL, detail: String)
    /// A zip member that the reader cannot use as is (compressed, encrypted, absent...).
    case unsupportedArchive(file: URL, detail: String)
    /// The checkpoint loaded, but its top level is not a state dict (and holds none under a known key).
    case notAStateDict(file: URL, detail: String)
    /// `StateDict.tensor(_:)` was asked for a name the file does not contain.
    case tensorNotFound(file: URL, name: String, available: Int)
    /// `StateDict.validate` found problems; all of them are listed, not just the first.
    case validationFailed(file: URL, problems: [ShapeProblem])

    public var file: URL {
        switch self {
        case .cannotOpen(let f, _), .unrecognizedFormat(let f, _), .truncated(let f, _),
             .unsupportedOpcode(let f, _, _), .disallowedGlobal(let f, _, _), .malformed(let f, _),
             .unsupportedArchive(let f, _), .notAStateDict(let f, _), .tensorNotFound(let f, _, _),
             .validationFailed(let f, _):
            return f
        }
    }

    public var description: String {
        let path = file.path
        switch self {
        case .cannotOpen(_, let reason):
            return "\(path): cannot open weight file (\(reason)); check the path and permissions."
        case .unrecognizedFormat(_, let bytes):
            let hex = bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "\(path): not a PyTorch checkpoint (first bytes: \(hex.isEmpty ? "<empty file>" : hex)); "
                + "expected a torch.save zip archive or a legacy torch.save pickle."
        case .truncated(_, let detail):
            return "\(path): file is truncated (\(detail)); re-download or re-save the checkpoint."
        case .unsupportedOpcode(_, let op, let offset):
            return "\(path): unsupported pickle opcode \(PickleOpcode.describe(op)) at pickle offset \(offset); "
                + "only plain state dicts of tensors are supported - save `model.state_dict()` with torch.save."
        case .disallowedGlobal(_, let module, let name):
            return "\(path): pickle references disallowed global '\(module).\(name)'; refusing to load. "
                + "Only tensors, parameters and OrderedDict are accepted - save `model.state_dict()` instead."
        case .malformed(_, let detail):
            return "\(path): malformed checkpoint (\(detail)); re-save it with torch.save(model.state_dict(), path)."
        case .unsupportedArchive(_, let detail):
            return "\(path): \(detail)"
        case .notAStateDict(_, let detail):
            return "\(path): not a state dict (\(detail)); save `model.state_dict()` (or a dict holding it under "
                + "\"state_dict\" or \"model\")."
        case .tensorNotFound(_, let name, let available):
            return "\(path): no tensor named '\(name)' (the file has \(available) tensors); "
                + "check the backbone's weight-name mapping."
        case .validationFailed(_, let problems):
            let shown = problems.prefix(40).map { "  - \($0)" }
            let more = problems.count > shown.count ? ["  ... and \(problems.count - shown.count) more"] : []
            return "\(path): weights do not match the model (\(problems.count) problem"
                + "\(problems.count == 1 ? "" : "s")); use the checkpoint published for this backbone:\n"
                + (shown + more).joined(separator: "\n")
        }
    }
}
