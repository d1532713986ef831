import FineTuneCore
import Foundation

/// How training rows are weighted in the loss.
public enum ClassWeighting: String, Codable, Hashable, Sendable, CaseIterable {
    /// Every row counts once.
    case none
    /// Weight of class c = n / (classes * n_c) over the training rows actually used,
    /// like scikit-learn's `compute_class_weight("balanced")`. Weights multiply each row's
    /// cross-entropy; the batch loss is still divided by the batch size (Keras `class_weight`).
    case balanced
}

/// Which optimizer fits the head.
public enum HeadSolver: String, Codable, Hashable, Sendable, CaseIterable {
    /// Adam on shuffled minibatches for every head (Keras-equivalent).
    case adam
    /// Full-batch L-BFGS; only for linear heads (`hidden == 0`). The input batch norm, if any,
    /// becomes a fixed standardization with the training rows' statistics (what BN converges to for
    /// a linear model), and each L-BFGS iteration counts as one "epoch" for curves and early stopping.
    case lbfgs
    /// `lbfgs` when `hidden == 0`, otherwise `adam`.
    case auto
}

/// Hyperparameters of a softmax head. Defaults reproduce the experiment's Keras head:
/// BatchNormalization -> Dense(256, relu, l2(1e-4)) -> Dropout(0.2) -> BatchNormalization -> Dense(classes, softmax),
/// Adam(1e-4), batch 32, early stopping on validation loss (patience 5, best weights restored).
///
/// A setting is a stored property here (its type and default) and one line of `HeadConfig.settings`
/// (its name, help and how tables show it). JSON, the command line, sweep files, leaderboards and
/// progress lines all work from that list; nothing else names every setting.
public struct HeadConfig: Hashable, Sendable {
    public var hidden = 256
    public var dropout = 0.2
    public var l2 = 1e-4
    public var batchnorm = true
    public var lr = 1e-4
    public var batchSize = 32
    public var epochs = 100
    public var patience = 5
    public var valSplit = 0.2
    /// nil: every stored copy.
    public var augmented: Int? = nil
    public var classWeights = ClassWeighting.none
    /// `.auto`: L-BFGS for linear heads, Adam otherwise. lr, batch_size and dropout only affect Adam.
    public var solver = HeadSolver.auto
    public var seed: UInt64 = 42
    /// Last blocks of the backbone trained with the head, on the inputs `extract --cache-blocks N`
    /// cached (N >= unfreeze); 0: the head alone on the pooled features.
    public var unfreeze = 0
    /// Adam learning rate of the unfrozen blocks; 0: lr / 10 (`effectiveBlockLR`).
    public var blockLr = 0.0
    /// Batch norm of the unfrozen blocks.
    public var bnMode = BatchNormMode.frozen
    /// Test-time augmentation: validation and test are also scored on the mean softmax over copies 0...tta.
    public var tta = 0
    /// Self-training: refit on the labeled images plus confident predictions on the unlabeled ones.
    public var pseudoLabel = false
    public var pseudoThreshold = 0.9
    public var rounds = 2
    /// Fraction of training images whose labels are kept (stratified, by image); the rest are unlabeled.
    public var labeledFraction = 1.0

    /// The experiment's head.
    public init() {}

    /// The experiment's head with some settings changed: `HeadConfig { $0.hidden = 0; $0.l2 = 1e-3 }`.
    public init(_ change: (inout HeadConfig) -> Void) { change(&self) }

    /// Every head setting, in the order tables and help list them.
    public static let settings: [HeadSetting] = [
        HeadSetting("hidden", \.hidden, "Hidden units (0: a plain linear softmax layer on the features, without dropout or a second batch norm).", v1: true),
        HeadSetting("dropout", \.dropout, "Inverted-dropout rate after the hidden layer.", v1: true, relevant: { $0.hidden > 0 && $0.effectiveSolver == .adam }),
        HeadSetting("l2", \.l2, "L2 penalty on the hidden kernel (a linear head's output kernel), Keras-style: loss += l2 * sum(W^2).", v1: true),
        HeadSetting("batchnorm", \.batchnorm, "Batch normalization on the input features and, with a hidden layer, after dropout.", v1: true),
        HeadSetting("lr", \.lr, "Adam learning rate.", v1: true, relevant: { $0.effectiveSolver == .adam }),
        HeadSetting("batch_size", \.batchSize, "Adam mini-batch size.", v1: true, relevant: { $0.effectiveSolver == .adam }),
        HeadSetting("epochs", \.epochs, "Maximum epochs (L-BFGS: iterations).", v1: true),
        HeadSetting("patience", \.patience, "Early stopping: epochs without a better validation loss (0: off; every epoch runs and the last weights are kept).", v1: true),
        HeadSetting("val_split", \.valSplit, "Fraction of training images held out for validation (stratified by class, by image).", v1: true),
        HeadSetting("augmented", \.augmented, "Train on augmented copies 0...K of the training images (all: every stored copy).", v1: true),
        HeadSetting("class_weights", \.classWeights, "Row weights in the loss: balanced weighs class c by n / (classes * n_c), like scikit-learn.", v1: true),
        HeadSetting("solver", \.solver, "adam (mini-batches), lbfgs (full batch, linear heads only), or auto: lbfgs when hidden is 0, else adam.", v1: true,
                    show: { $0.effectiveSolver.rawValue }),
        HeadSetting("seed", \.seed, "Seed (initialization, validation split, shuffling, dropout).", v1: true),
        HeadSetting("unfreeze", \.unfreeze, "Fine-tune the last N blocks of the backbone with the head, on the block inputs `extract --cache-blocks N` stored (0: the head alone, on the pooled features). The head is fitted first on the frozen blocks, then both train together; epoch 0 (the frozen head) is kept if no epoch beats its validation loss."),
        HeadSetting("block_lr", \.blockLr, "Adam learning rate of the unfrozen blocks (0: lr / 10, discriminative rates as fastai and Keras's fine-tuning guide).",
                    relevant: { $0.unfreeze > 0 }, show: { $0.blockLr > 0 ? String(format: "%g", $0.blockLr) : "lr/10" }),
        HeadSetting("bn_mode", \.bnMode, "Batch norm of the unfrozen blocks: frozen (stored statistics, as Keras advises for fine-tuning) or train (batch statistics; running statistics updated).",
                    relevant: { $0.unfreeze > 0 }),
        HeadSetting("tta", \.tta, "Test-time augmentation: also score validation and test on the mean softmax over stored copies 0...K of each image (needs `extract --augment K`)."),
        HeadSetting("pseudo_label", \.pseudoLabel, "Self-training: fit on the labeled training images, label the unlabeled ones (those labeled_fraction leaves, and images stored by `extract --unlabeled`) whose top probability reaches threshold, refit on both; repeat for `rounds`."),
        HeadSetting("threshold", \.pseudoThreshold, "Lowest top probability of a kept pseudo-label.", relevant: { $0.pseudoLabel }),
        HeadSetting("rounds", \.rounds, "Pseudo-labeling rounds (each predicts the unlabeled images with the previous round's head and refits).", relevant: { $0.pseudoLabel }),
        HeadSetting("labeled_fraction", \.labeledFraction, "Keep the labels of this fraction of training images (stratified by class, by image, seeded); the rest are unlabeled (for pseudo_label, whose accuracy is then known)."),
    ]

    /// The setting with this key (`batch_size`), if any.
    public static func setting(_ key: String) -> HeadSetting? { settings.first { $0.key == key } }

    /// The solver actually used (resolves `.auto`).
    public var effectiveSolver: HeadSolver {
        switch solver {
        case .auto: return hidden == 0 && unfreeze == 0 ? .lbfgs : .adam
        default: return solver
        }
    }

    /// The unfrozen blocks' learning rate (`block_lr`, or lr / 10 when it is 0).
    public var effectiveBlockLR: Double { blockLr > 0 ? blockLr : lr / 10 }

    /// Throws `invalidConfig` naming the first unusable field.
    public func validate() throws {
        func bad(_ f: String, _ v: Any, _ e: String) -> HeadTrainerError { .invalidConfig(field: f, value: "\(v)", expected: e) }
        if hidden < 0 { throw bad("hidden", hidden, "0 (linear head) or a positive unit count") }
        if !(dropout >= 0 && dropout < 1) { throw bad("dropout", dropout, "a rate in [0, 1)") }
        if !(l2 >= 0 && l2.isFinite) { throw bad("l2", l2, "a finite value >= 0") }
        if !(lr > 0 && lr.isFinite) { throw bad("lr", lr, "a finite value > 0") }
        if batchSize < 1 { throw bad("batch_size", batchSize, "at least 1") }
        if epochs < 1 { throw bad("epochs", epochs, "at least 1") }
        if patience < 0 { throw bad("patience", patience, "0 (no early stopping) or more") }
        if !(valSplit >= 0 && valSplit < 1) { throw bad("val_split", valSplit, "a fraction in [0, 1)") }
        if let a = augmented, a < 0 { throw bad("augmented", a, "nil (all copies) or a copy index >= 0") }
        if tta < 0 { throw bad("tta", tta, "0 (no test-time augmentation) or a copy count") }
        if !(pseudoThreshold >= 0 && pseudoThreshold <= 1) { throw bad("threshold", pseudoThreshold, "a probability in [0, 1]") }
        if rounds < 1 { throw bad("rounds", rounds, "at least 1") }
        if !(labeledFraction > 0 && labeledFraction <= 1) { throw bad("labeled_fraction", labeledFraction, "a fraction in (0, 1]") }
        if solver == .lbfgs && hidden != 0 { throw bad("solver", "lbfgs", "adam or auto when hidden > 0 (L-BFGS fits linear heads only)") }
        if unfreeze < 0 { throw bad("unfreeze", unfreeze, "0 (the head alone) or a number of blocks >= 1") }
        if !(blockLr >= 0 && blockLr.isFinite) { throw bad("block_lr", blockLr, "0 (lr / 10) or a finite value > 0") }
        if solver == .lbfgs && unfreeze > 0 { throw bad("solver", "lbfgs", "adam or auto when unfreeze > 0 (blocks train with Adam)") }
    }
}

/// One head setting: its key (in JSON and sweep files; `--key-with-dashes` on the command line),
/// help text, default, and how tables show it.
public struct HeadSetting: @unchecked Sendable {
    public let key: String
    public let help: String
    public let kind: HeadSettingKind
    /// What a value must be, for errors ("an integer", "none or balanced").
    public let expected: String
    /// The value in a configuration, as sweep files and canonical JSON hold it.
    public let value: (HeadConfig) -> SettingValue
    /// The value as tables and progress lines show it.
    public let show: (HeadConfig) -> String
    /// Whether the trainer uses the setting in this configuration (tables show "-" otherwise).
    public let relevant: (HeadConfig) -> Bool
    /// Sets the value back to the default (`HeadConfig()`'s).
    public let reset: (inout HeadConfig) -> Void
    /// Written to JSON even at its default (see `init`).
    public let v1: Bool
    /// Sets the value from text written by hand (`256`, `1e-4`, `balanced`, `all`); false if it is not one.
    public let parse: (inout HeadConfig, String) -> Bool
    /// Sets the value from a decoder (JSON, YAML) holding it: the type's own form, or text `parse` reads.
    public let read: (inout HeadConfig, Decoder) throws -> Void
    let encode: (HeadConfig, inout KeyedEncodingContainer<SettingKey>) throws -> Void

    /// The default, as the command line writes it.
    public let defaultText: String
    /// The value as sweep files hold it, read from a decoder.
    public func readValue(_ decoder: Decoder) throws -> SettingValue {
        var c = HeadConfig()
        try read(&c, decoder)
        return value(c)
    }

    /// `v1`: written to JSON even at its default, as the first version wrote every setting. A setting
    /// added later is left out at its default, so the JSON (and the sweep trial key) of every earlier
    /// configuration stays the same.
    init<T: HeadSettingValue>(_ key: String, _ path: WritableKeyPath<HeadConfig, T>, _ help: String, v1: Bool = false,
                              relevant: @escaping (HeadConfig) -> Bool = { _ in true },
                              show: ((HeadConfig) -> String)? = nil) {
        self.key = key
        self.help = help
        kind = T.kind
        expected = T.expected
        value = { $0[keyPath: path].value }
        self.show = show ?? { $0[keyPath: path].text }
        self.relevant = relevant
        parse = { c, text in
            guard let v = T(text: text) else { return false }
            c[keyPath: path] = v
            return true
        }
        read = { c, decoder in c[keyPath: path] = try T.read(decoder) }
        let codingKey = SettingKey(stringValue: key)
        let standard = HeadConfig()[keyPath: path]
        defaultText = standard.text
        reset = { $0[keyPath: path] = standard }
        self.v1 = v1
        encode = { c, container in
            let v = c[keyPath: path]
            if v.value == .null || (!v1 && v == standard) { return }
            try container.encode(v, forKey: codingKey)
        }
    }
}

/// What kind of value a setting takes.
public enum HeadSettingKind: Equatable, Sendable {
    case integer, number, flag
    case choice([String])
}

/// A setting's value as sweep files and canonical JSON hold it.
public enum SettingValue: Hashable, Sendable, CustomStringConvertible {
    case int(Int), double(Double), bool(Bool), string(String), null

    public var description: String {
        switch self {
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .string(let s): return s
        case .null: return "null"
        }
    }
}

/// A type a head setting may have.
public protocol HeadSettingValue: Codable, Hashable, Sendable {
    static var kind: HeadSettingKind { get }
    /// What a value must be, for errors ("an integer", "none or balanced").
    static var expected: String { get }
    /// Reads text written by hand; nil if it is not a value of this type.
    init?(text: String)
    var value: SettingValue { get }
    /// How tables show the value.
    var text: String { get }
}

extension HeadSettingValue {
    public var text: String {
        switch value {
        case .double(let d): return String(format: "%g", d)
        case .bool(let b): return b ? "yes" : "no"
        default: return value.description
        }
    }

    public static var expected: String {
        switch kind {
        case .integer: return "an integer"
        case .number: return "a number"
        case .flag: return "true or false"
        case .choice(let names): return names.joined(separator: ", ").replacingLastOccurrence(of: ", ", with: " or ")
        }
    }

    /// The value a decoder holds, in this type's own form or as text `init(text:)` reads (YAML 1.1
    /// reads `1e-4` as text; `256.0` is an integer; `all` is every augmented copy).
    public static func read(_ decoder: Decoder) throws -> Self {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Self.self) { return v }
        let text = try? c.decode(String.self)
        if let text, let v = Self(text: text) { return v }
        throw DecodingError.typeMismatch(Self.self, .init(codingPath: decoder.codingPath,
                                                          debugDescription: "must be \(expected), not \(text.map { "`\($0)`" } ?? "a list or mapping")"))
    }
}

extension Int: HeadSettingValue {
    public static var kind: HeadSettingKind { .integer }
    public init?(text: String) {
        if let i = Int(text) { self = i; return }
        guard let d = Double(text), d == d.rounded(), abs(d) < 1e15 else { return nil }
        self = Int(d)
    }
    public var value: SettingValue { .int(self) }
}

extension UInt64: HeadSettingValue {
    public static var kind: HeadSettingKind { .integer }
    public init?(text: String) {
        guard let i = Int(text: text), let u = UInt64(exactly: i) else { return nil }
        self = u
    }
    public var value: SettingValue { Int(exactly: self).map { .int($0) } ?? .string("\(self)") }
}

extension Double: HeadSettingValue {
    public static var kind: HeadSettingKind { .number }
    public init?(text: String) {
        guard let d = Double(text) else { return nil }
        self = d
    }
    public var value: SettingValue { .double(self) }
}

extension Bool: HeadSettingValue {
    public static var kind: HeadSettingKind { .flag }
    public init?(text: String) {
        switch text.lowercased() {
        case "true", "yes", "on": self = true
        case "false", "no", "off": self = false
        default: return nil
        }
    }
    public var value: SettingValue { .bool(self) }
}

/// An optional copy index: nil (every copy) is written `all`, `none` or `null`.
extension Optional: HeadSettingValue where Wrapped == Int {
    public static var kind: HeadSettingKind { .integer }
    public static var expected: String { "an integer or all" }
    public init?(text: String) {
        if ["all", "none", "null", "~"].contains(text.lowercased()) { self = .none; return }
        guard let i = Int(text: text) else { return nil }
        self = i
    }
    public var value: SettingValue { map { .int($0) } ?? .null }
    public var text: String { map { "\($0)" } ?? "all" }
}

extension HeadSettingValue where Self: RawRepresentable & CaseIterable, RawValue == String {
    public static var kind: HeadSettingKind { .choice(allCases.map(\.rawValue)) }
    public init?(text: String) { self.init(rawValue: text) }
    public var value: SettingValue { .string(rawValue) }
}

extension ClassWeighting: HeadSettingValue {}
extension HeadSolver: HeadSettingValue {}
extension BatchNormMode: HeadSettingValue {}

/// A key of HeadConfig's JSON.
struct SettingKey: CodingKey {
    let stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// HeadConfig's JSON: one key per setting; missing keys keep their defaults, so config files may
/// list only what they change, and unknown keys are ignored.
extension HeadConfig: Codable {
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: SettingKey.self)
        for s in Self.settings {
            let key = SettingKey(stringValue: s.key)
            if c.contains(key) { try s.read(&self, c.superDecoder(forKey: key)) }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: SettingKey.self)
        for s in Self.settings { try s.encode(self, &c) }
    }
}

private extension String {
    func replacingLastOccurrence(of a: String, with b: String) -> String {
        guard let r = range(of: a, options: .backwards) else { return self }
        return replacingCharacters(in: r, with: b)
    }
}
