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
public struct HeadConfig: Codable, Hashable, Sendable {
    /// Units of the hidden Dense+ReLU layer; 0 gives the plain linear softmax layer (no dropout, no second BN).
    public var hidden: Int
    /// Inverted-dropout rate after the hidden layer (ignored when `hidden == 0`).
    public var dropout: Double
    /// Keras-style L2 on the hidden kernel (the output kernel when `hidden == 0`): loss += l2 * sum(W^2).
    public var l2: Double
    /// Batch norm on the input features and (when `hidden > 0`) after dropout.
    public var batchnorm: Bool
    /// Adam learning rate.
    public var lr: Double
    public var batchSize: Int
    /// Maximum epochs (L-BFGS: maximum iterations).
    public var epochs: Int
    /// Early-stopping patience in epochs on validation loss; 0 disables early stopping (all epochs
    /// run and the last weights are kept; validation is still scored each epoch).
    public var patience: Int
    /// Fraction of training *images* (not rows) held out for validation, stratified by class.
    public var valSplit: Double
    /// Highest augmentation index used for training (0 = original images only); nil uses every copy.
    public var augmented: Int?
    public var classWeights: ClassWeighting
    /// `.auto` (default): L-BFGS for linear heads, Adam otherwise. lr, batch_size and dropout only
    /// affect Adam.
    public var solver: HeadSolver
    public var seed: UInt64

    public init(hidden: Int = 256, dropout: Double = 0.2, l2: Double = 1e-4, batchnorm: Bool = true,
                lr: Double = 1e-4, batchSize: Int = 32, epochs: Int = 100, patience: Int = 5,
                valSplit: Double = 0.2, augmented: Int? = nil, classWeights: ClassWeighting = .none,
                solver: HeadSolver = .auto, seed: UInt64 = 42) {
        self.hidden = hidden; self.dropout = dropout; self.l2 = l2; self.batchnorm = batchnorm
        self.lr = lr; self.batchSize = batchSize; self.epochs = epochs; self.patience = patience
        self.valSplit = valSplit; self.augmented = augmented; self.classWeights = classWeights
        self.solver = solver; self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case hidden, dropout, l2, batchnorm, lr, epochs, patience, augmented, seed, solver
        case batchSize = "batch_size", valSplit = "val_split", classWeights = "class_weights"
    }

    /// Decoding fills missing keys with the defaults, so config files may list only what they change.
    public init(from decoder: Decoder) throws {
        let d = HeadConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hidden = try c.decodeIfPresent(Int.self, forKey: .hidden) ?? d.hidden
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? d.dropout
        l2 = try c.decodeIfPresent(Double.self, forKey: .l2) ?? d.l2
        batchnorm = try c.decodeIfPresent(Bool.self, forKey: .batchnorm) ?? d.batchnorm
        lr = try c.decodeIfPresent(Double.self, forKey: .lr) ?? d.lr
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? d.patience
        valSplit = try c.decodeIfPresent(Double.self, forKey: .valSplit) ?? d.valSplit
        augmented = try c.decodeIfPresent(Int.self, forKey: .augmented) ?? d.augmented
        classWeights = try c.decodeIfPresent(ClassWeighting.self, forKey: .classWeights) ?? d.classWeights
        solver = try c.decodeIfPresent(HeadSolver.self, forKey: .solver) ?? d.solver
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }

    /// The solver actually used (resolves `.auto`).
    public var effectiveSolver: HeadSolver {
        switch solver {
        case .auto: return hidden == 0 ? .lbfgs : .adam
        default: return solver
        }
    }

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
        if solver == .lbfgs && hidden != 0 { throw bad("solver", "lbfgs", "adam or auto when hidden > 0 (L-BFGS fits linear heads only)") }
    }
}
