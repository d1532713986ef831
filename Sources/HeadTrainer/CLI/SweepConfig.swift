import FeatureStore
import Foundation
import HeadTrainerCore
import WorkbenchSupport
import Yams

/// A sweep file: which extractions to train on and which head settings to try.
///
/// ```yaml
/// name: scenes-lite0-sweep      # the sweep's name in the store (default: the file name)
/// store: features.sqlite        # default store; `--store` overrides it
/// extractions:                  # backbone names (the extraction with the most features) or extraction ids
///   - efficientnet_lite0
/// search: grid                  # grid (every combination) or random (`trials` samples)
/// trials: 40                    # random search only (raising it later extends the sweep)
/// sampler_seed: 1               # random search only: seed of the sampler
/// repeats: 1                    # seeds seed, seed+1, ... for every combination
/// defaults: {patience: 5}       # fixed head settings (train-head option names, snake_case)
/// parameters:                   # swept head settings: a list of values, or (random only) a range
///   hidden: [0, 256, 512]
///   lr: {min: 1.0e-4, max: 1.0e-2, log: true}
/// ```
///
/// `parameters` may also be a list of such mappings: the sweep is then the union of their grids
/// (e.g. linear heads with their own L2 values next to hidden-layer heads).
///
/// Parsed by hand from Yams' plain values (not Codable) so every error names the file and the key.
struct SweepSpec {
    enum Search: String { case grid, random }

    /// One swept parameter: listed values, or a range for random search.
    enum Values: Equatable {
        case list([SweepValue])
        case range(min: Double, max: Double, log: Bool, integer: Bool)
    }

    /// An extraction named in the file.
    enum ExtractionRef: Equatable, CustomStringConvertible {
        case backbone(String)
        case id(Int64)
        var description: String {
            switch self {
            case .backbone(let b): return b
            case .id(let i): return "extraction \(i)"
            }
        }
    }

    var path: String
    var name: String
    var store: String?
    var extractions: [ExtractionRef]
    var search: Search
    var trials: Int
    var samplerSeed: UInt64
    var repeats: Int
    /// Fixed settings, by HeadConfig JSON key.
    var defaults: [String: SweepValue]
    /// Swept settings in a fixed (sorted) order; several sets form a union of grids.
    var parameterSets: [[(name: String, values: Values)]]

    /// Every swept setting name, in `headKeys` order.
    var sweptKeys: [String] { SweepSpec.headKeys.filter { k in parameterSets.contains { $0.contains { $0.name == k } } } }

    /// HeadConfig's JSON keys: what `defaults` and `parameters` may name.
    static let headKeys: [String] = ["hidden", "dropout", "l2", "batchnorm", "lr", "batch_size", "epochs", "patience",
                                     "val_split", "augmented", "class_weights", "solver", "seed"]
    static let integerKeys: Set<String> = ["hidden", "batch_size", "epochs", "patience", "augmented", "seed"]
    static let topKeys: Set<String> = ["name", "store", "extractions", "backbones", "search", "trials", "sampler_seed",
                                       "repeats", "defaults", "parameters"]

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func load(path: String) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read the sweep file \(path); check the path (see configs/ for examples)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw Failure(description: "\(path) is not valid YAML: \(error)")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try parse(root, path: path, defaultName: stem)
    }

    static func parse(_ root: Any?, path: String, defaultName: String) throws -> SweepSpec {
        func fail(_ s: String) -> Failure { Failure(description: "\(path): \(s)") }
        guard let top = root as? [String: Any] else {
            throw fail("expected a mapping with `extractions:` and `parameters:` (see configs/scenes-lite0-sweep.yaml)")
        }
        for key in top.keys where !topKeys.contains(key) {
            throw fail("unknown key `\(key)`; known keys: \(topKeys.sorted().joined(separator: ", "))")
        }
        let name = (top["name"].map { "\($0)" } ?? defaultName).trimmingCharacters(in: .whitespaces)
        if name.isEmpty { throw fail("`name` is empty; give the sweep a name") }
        let store = top["store"].map { "\($0)" }

        var refs: [ExtractionRef] = []
        let rawExtractions = top["extractions"] ?? top["backbones"]
        let list: [Any] = (rawExtractions as? [Any]) ?? (rawExtractions.map { [$0] } ?? [])
        for item in list {
            if let i = item as? Int { refs.append(.id(Int64(i))) }
            else if let s = item as? String, !s.isEmpty { refs.append(s.lowercased().hasPrefix("id:") ? try idRef(s, fail) : .backbone(s)) }
            else if let m = item as? [String: Any], let i = m["id"] as? Int { refs.append(.id(Int64(i))) }
            else if let m = item as? [String: Any], let b = m["backbone"] as? String { refs.append(.backbone(b)) }
            else { throw fail("`extractions` entry \(item) is neither a backbone name nor an extraction id") }
        }
        if refs.isEmpty { throw fail("`extractions` is missing or empty; list backbones (e.g. efficientnet_lite0) or extraction ids") }

        let searchText = (top["search"] as? String) ?? "grid"
        guard let search = Search(rawValue: searchText.lowercased()) else {
            throw fail("`search: \(searchText)` is unknown; use grid or random")
        }
        func int(_ key: String, _ dflt: Int, min lo: Int) throws -> Int {
            guard let v = top[key] else { return dflt }
            guard let i = v as? Int, i >= lo else { throw fail("`\(key)` must be an integer >= \(lo), not \(v)") }
            return i
        }
        let trials = try int("trials", 20, min: 1)
        if search == .grid && top["trials"] != nil { throw fail("`trials` only applies to `search: random`") }
        let samplerSeed = UInt64(try int("sampler_seed", 0, min: 0))
        let repeats = try int("repeats", 1, min: 1)

        var defaults: [String: SweepValue] = [:]
        if let d = top["defaults"] {
            guard let m = d as? [String: Any] else { throw fail("`defaults` must be a mapping of head settings") }
            for (k, v) in m {
                try checkKey(k, fail)
                defaults[k] = try SweepValue(v, key: k, fail)
            }
        }
        // `parameters`: one mapping (one grid), or a list of mappings (a union of grids, as in
        // scikit-learn's ParameterGrid), e.g. linear heads with their own L2 values beside hidden ones.
        var parameterSets: [[(name: String, values: Values)]] = []
        let rawSets: [Any] = (top["parameters"] as? [Any]) ?? (top["parameters"].map { [$0] } ?? [[String: Any]()])
        for (si, raw) in rawSets.enumerated() {
            let label = rawSets.count > 1 ? "parameters[\(si)]" : "parameters"
            guard let m = raw as? [String: Any] else {
                throw fail("`\(label)` must be a mapping of head settings to value lists (or a list of such mappings)")
            }
            var set: [(name: String, values: Values)] = []
            for k in m.keys.sorted() {
                try checkKey(k, fail)
                if defaults[k] != nil { throw fail("`\(k)` is both in `defaults` and in `\(label)`; keep one") }
                let raw = m[k]!
                if let list = raw as? [Any] {
                    if list.isEmpty { throw fail("`\(label).\(k)` is an empty list") }
                    set.append((k, .list(try list.map { try SweepValue($0, key: k, fail) })))
                } else if let r = raw as? [String: Any] {
                    guard search == .random else {
                        throw fail("`\(label).\(k)` is a range; ranges need `search: random` (a grid needs a list of values)")
                    }
                    guard let lo = number(r["min"]), let hi = number(r["max"]), lo <= hi else {
                        throw fail("`\(label).\(k)` range needs numeric `min` <= `max`")
                    }
                    let log = (r["log"] as? Bool) ?? false
                    if log && lo <= 0 { throw fail("`\(label).\(k)`: a log range needs min > 0") }
                    set.append((k, .range(min: lo, max: hi, log: log, integer: integerKeys.contains(k))))
                } else {
                    set.append((k, .list([try SweepValue(raw, key: k, fail)])))
                }
            }
            parameterSets.append(set)
        }
        if parameterSets.isEmpty { throw fail("`parameters` is an empty list") }
        if repeats > 1 && parameterSets.contains(where: { $0.contains { $0.name == "seed" } }) {
            throw fail("`repeats` with a swept `seed` is ambiguous; use one of them")
        }
        let spec = SweepSpec(path: path, name: name, store: store, extractions: refs, search: search, trials: trials,
                             samplerSeed: samplerSeed, repeats: repeats, defaults: defaults, parameterSets: parameterSets)
        // Every combination must be a valid head; check the first one now (others when planned).
        _ = try spec.headConfig([:])
        return spec
    }

    private static func idRef(_ s: String, _ fail: (String) -> Failure) throws -> ExtractionRef {
        guard let i = Int64(s.dropFirst(3).trimmingCharacters(in: .whitespaces)) else { throw fail("`\(s)` is not `id:NUMBER`") }
        return .id(i)
    }

    private static func checkKey(_ k: String, _ fail: (String) -> Failure) throws {
        if !headKeys.contains(k) {
            throw fail("`\(k)` is not a head setting; known: \(headKeys.joined(separator: ", "))")
        }
    }

    static func number(_ v: Any?) -> Double? {
        if let i = v as? Int { return Double(i) }
        if let d = v as? Double { return d }
        if let s = v as? String { return Double(s) }   // YAML 1.1 reads 1e-4 (no dot) as a string
        return nil
    }

    /// The head configuration of one combination (`values` by key), defaults filled in.
    func headConfig(_ values: [String: SweepValue]) throws -> HeadConfig {
        var object: [String: CanonicalJSON] = [:]
        for (k, v) in defaults { object[k] = v.json }
        for (k, v) in values { object[k] = v.json }
        let data = Data(CanonicalJSON.object(object).text.utf8)
        let config: HeadConfig
        do { config = try JSONDecoder().decode(HeadConfig.self, from: data) } catch {
            throw Failure(description: "\(path): head settings \(String(decoding: data, as: UTF8.self)) do not fit the head's types (\(error))")
        }
        do { try config.validate() } catch { throw Failure(description: "\(path): \(error)") }
        return config
    }

    /// The sweep's identity in the store: everything that decides which trials exist (not the store,
    /// jobs or shard). A resumed sweep must have the same.
    var canonicalJSON: String {
        let sets: [CanonicalJSON] = parameterSets.map { set in
            var p: [String: CanonicalJSON] = [:]
            for (k, v) in set {
                switch v {
                case .list(let l): p[k] = .array(l.map(\.json))
                case let .range(lo, hi, log, _): p[k] = .object(["min": .double(lo), "max": .double(hi), "log": .bool(log)])
                }
            }
            return .object(p)
        }
        var o: [String: CanonicalJSON] = [
            "extractions": .array(extractions.map { r in
                switch r { case .backbone(let b): return .string(b); case .id(let i): return .object(["id": .int(i)]) }
            }),
            "search": .string(search.rawValue), "repeats": .int(Int64(repeats)),
            "defaults": .object(defaults.mapValues(\.json)), "parameters": sets.count == 1 ? sets[0] : .array(sets),
        ]
        if search == .random { o["trials"] = .int(Int64(trials)); o["sampler_seed"] = .uint(samplerSeed) }
        return CanonicalJSON.object(o).text
    }

    /// Every head configuration of the sweep, in a fixed order, without duplicates (two combinations
    /// that train the same model, e.g. dropout values of a linear head, are one trial).
    func configurations() throws -> [HeadConfig] {
        var combos: [[String: SweepValue]] = []
        switch search {
        case .grid:
            for set in parameterSets {
                var grid: [[String: SweepValue]] = [[:]]
                for (k, v) in set {
                    guard case .list(let values) = v else { continue }
                    grid = grid.flatMap { c in values.map { var c2 = c; c2[k] = $0; return c2 } }
                }
                combos += grid
            }
        case .random:
            // Each sample picks one parameter set (uniformly), then a value of each of its settings.
            var rng = HeadRNG(seed: samplerSeed, stream: 0x5EE9)
            for _ in 0..<trials {
                var c: [String: SweepValue] = [:]
                let set = parameterSets[parameterSets.count > 1 ? rng.nextInt(below: parameterSets.count) : 0]
                for (k, v) in set {
                    switch v {
                    case .list(let values): c[k] = values[rng.nextInt(below: values.count)]
                    case let .range(lo, hi, log, integer):
                        let u = Double(rng.next() >> 11) * 0x1p-53
                        var x = log ? Foundation.exp(Foundation.log(lo) + u * (Foundation.log(hi) - Foundation.log(lo))) : lo + u * (hi - lo)
                        if integer { x = x.rounded() } else { x = Double(String(format: "%.4g", x)) ?? x }
                        c[k] = integer ? .int(Int(x)) : .double(x)
                    }
                }
                combos.append(c)
            }
        }
        var out: [HeadConfig] = [], seen = Set<String>()
        for c in combos {
            let base = try headConfig(c)
            for r in 0..<repeats {
                var config = base
                config.seed = base.seed &+ UInt64(r)
                let canon = SweepSpec.canonical(config)
                if seen.insert(SweepSpec.json(canon)).inserted { out.append(canon) }
            }
        }
        return out
    }

    /// The configuration with settings the trainer ignores set to fixed values, so that equivalent
    /// trials share one key: a linear head has no dropout; L-BFGS (linear heads by default) uses
    /// neither lr nor batch size (they are reset to the defaults and shown as "-").
    static func canonical(_ c: HeadConfig) -> HeadConfig {
        var c = c
        let d = HeadConfig()
        c.solver = c.effectiveSolver
        if c.hidden == 0 { c.dropout = 0 }
        if c.solver == .lbfgs { c.lr = d.lr; c.batchSize = d.batchSize; c.dropout = 0 }
        return c
    }

    /// Whether a setting matters for this configuration (for tables and plots).
    static func relevant(_ key: String, _ c: HeadConfig) -> Bool {
        switch key {
        case "dropout": return c.hidden > 0 && c.effectiveSolver == .adam
        case "lr", "batch_size": return c.effectiveSolver == .adam
        default: return true
        }
    }

    /// Canonical JSON of a configuration: the text hashed into trial keys.
    static func json(_ c: HeadConfig) -> String { (try? CanonicalJSON(encoding: c))?.text ?? "" }

    /// A trial's stable identity: sha256 over the extraction's settings key and the canonical config
    /// (16 hex digits). The same trial in another store, shard or run has the same key.
    static func trialKey(extractionSettingsKey: String, config: HeadConfig) -> String {
        var h = SHA256Digest()
        h.update(Data("train-head sweep trial v1\n\(extractionSettingsKey)\n\(json(canonical(config)))".utf8))
        return String(SHA256Digest.hex(h.finalize()).prefix(16))
    }
}

/// A value in a sweep file (YAML scalar), kept typed so canonical JSON is stable.
enum SweepValue: Equatable, CustomStringConvertible {
    case int(Int), double(Double), bool(Bool), string(String), null

    init(_ v: Any, key: String, _ fail: (String) -> SweepSpec.Failure) throws {
        if v is NSNull { self = .null; return }
        if let b = v as? Bool { self = .bool(b); return }   // Yams gives Swift Bool/Int/Double (no NSNumber bridging on Linux)
        if let i = v as? Int { self = SweepSpec.integerKeys.contains(key) ? .int(i) : .double(Double(i)); return }
        if let d = v as? Double {
            if SweepSpec.integerKeys.contains(key) {
                guard d == d.rounded(), abs(d) < 1e15 else { throw fail("`\(key)` must be an integer, not \(d)") }
                self = .int(Int(d)); return
            }
            self = .double(d); return
        }
        if let s = v as? String {
            if ["null", "~", "none", "all"].contains(s.lowercased()) && key == "augmented" { self = .null; return }
            if let d = Double(s), !["class_weights", "solver"].contains(key) {
                self = try SweepValue(d, key: key, fail); return
            }
            self = .string(s); return
        }
        throw fail("`\(key)`: cannot use the value \(v)")
    }

    var json: CanonicalJSON {
        switch self {
        case .int(let i): return .int(Int64(i))
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s)
        case .null: return .null
        }
    }

    var description: String {
        switch self {
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .string(let s): return s
        case .null: return "null"
        }
    }
}
