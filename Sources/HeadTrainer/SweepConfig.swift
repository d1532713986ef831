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
///   - efficientnet_lite0+efficientnet_lite2   # both, concatenated per image (`train-head --backbone a+b`)
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
/// Decoded by Yams' YAMLDecoder; every error names the file and the key path (`parameters[1].lr`).
/// Head settings are the keys of `HeadConfig.settings`, read as their types read hand-written values.
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
    /// The settings that differ between trials: the swept ones, and the seed when repeated.
    var columnKeys: [String] { sweptKeys + (repeats > 1 && !sweptKeys.contains("seed") ? ["seed"] : []) }

    /// HeadConfig's JSON keys: what `defaults` and `parameters` may name.
    static var headKeys: [String] { HeadConfig.settings.map(\.key) }
    static let topKeys = ["name", "store", "extractions", "backbones", "search", "trials", "sampler_seed", "repeats", "defaults", "parameters"]

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func load(path: String) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read the sweep file \(path); check the path (see configs/ for examples)")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let spec: SweepSpec
        do {
            spec = try YAMLDecoder().decode(SweepSpec.self, from: String(decoding: data, as: UTF8.self),
                                            userInfo: [.sweepPath: path, .sweepName: stem])
        } catch let e as DecodingError {
            throw Failure(description: "\(path): \(describe(e))")
        } catch {
            throw Failure(description: "\(path) is not valid YAML: \(error)")
        }
        // Every combination must be a valid head; check the first one now (others when planned).
        _ = try spec.headConfig([:])
        return spec
    }

    /// A decoding error as "`key.path` what is wrong".
    static func describe(_ e: DecodingError) -> String {
        let path: [CodingKey], what: String
        switch e {
        case .typeMismatch(_, let c), .valueNotFound(_, let c): (path, what) = (c.codingPath, c.debugDescription)
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty, let underlying = c.underlyingError { return "not valid YAML: \(underlying)" }
            (path, what) = (c.codingPath, c.debugDescription)
        case .keyNotFound(let k, let c): (path, what) = (c.codingPath + [k], "is missing")
        @unknown default: return "\(e)"
        }
        let key = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return key.isEmpty ? what : "`\(key.hasPrefix(".") ? String(key.dropFirst()) : key)` \(what)"
    }

    /// The head configuration of one combination (`values` by key), defaults filled in.
    func headConfig(_ values: [String: SweepValue]) throws -> HeadConfig {
        var object: [String: CanonicalJSON] = [:]
        for (k, v) in defaults { object[k] = v.canonical }
        for (k, v) in values { object[k] = v.canonical }
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
                case .list(let l): p[k] = .array(l.map(\.canonical))
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
            "defaults": .object(defaults.mapValues(\.canonical)), "parameters": sets.count == 1 ? sets[0] : .array(sets),
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
    /// trials share one key (and run once): a linear head has no dropout; L-BFGS (linear heads by
    /// default) uses neither lr nor batch size (they are reset to the defaults and shown as "-");
    /// every later setting that does not apply (`block_lr` and `bn_mode` without `unfreeze`,
    /// `threshold` and `rounds` without `pseudo_label`) goes back to its default, which leaves it out
    /// of the canonical JSON. The first version's settings keep their own rules above, so trial keys
    /// recorded by it stay the same.
    static func canonical(_ c: HeadConfig) -> HeadConfig {
        var c = c
        let d = HeadConfig()
        c.solver = c.effectiveSolver
        if c.hidden == 0 { c.dropout = 0 }
        if c.solver == .lbfgs { c.lr = d.lr; c.batchSize = d.batchSize; c.dropout = 0 }
        let ignored = HeadConfig.settings.filter { !$0.v1 && !$0.relevant(c) }
        for s in ignored { s.reset(&c) }
        return c
    }

    /// Whether a setting matters for this configuration (for tables and plots).
    static func relevant(_ key: String, _ c: HeadConfig) -> Bool { HeadConfig.setting(key)?.relevant(c) ?? true }

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

/// A value in a sweep file, kept typed (as its setting's type has it) so canonical JSON is stable.
typealias SweepValue = SettingValue

extension CodingUserInfoKey {
    static let sweepPath = CodingUserInfoKey(rawValue: "sweepPath")!
    static let sweepName = CodingUserInfoKey(rawValue: "sweepName")!
}

/// Any key of a sweep file's mappings, or a list index.
struct SweepKey: CodingKey, ExpressibleByStringLiteral {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init(stringLiteral s: String) { self.init(stringValue: s) }
    init(intValue: Int) { stringValue = "\(intValue)"; self.intValue = intValue }
}

/// A sweep file's error at `path` (key path of the value).
private func invalid(_ path: [CodingKey], _ what: String) -> DecodingError {
    .dataCorrupted(.init(codingPath: path, debugDescription: what))
}

extension SweepSpec: Decodable {
    init(from decoder: Decoder) throws {
        guard let c = try? decoder.container(keyedBy: SweepKey.self) else {
            throw invalid([], "expected a mapping with `extractions:` and `parameters:` (see configs/scenes-lite0-sweep.yaml)")
        }
        for k in c.allKeys where !Self.topKeys.contains(k.stringValue) {
            throw invalid([k], "is not a key of sweep files; known keys: \(Self.topKeys.joined(separator: ", "))")
        }
        path = decoder.userInfo[.sweepPath] as? String ?? "sweep file"
        name = (try c.decodeIfPresent(String.self, forKey: "name") ?? (decoder.userInfo[.sweepName] as? String ?? "sweep"))
            .trimmingCharacters(in: .whitespaces)
        if name.isEmpty { throw invalid([SweepKey("name")], "is empty; give the sweep a name") }
        store = try c.decodeIfPresent(String.self, forKey: "store")

        let extractionsKey: SweepKey = c.contains("backbones") && !c.contains("extractions") ? "backbones" : "extractions"
        extractions = []
        if c.contains(extractionsKey) {
            if var list = try? c.nestedUnkeyedContainer(forKey: extractionsKey) {
                while !list.isAtEnd { extractions.append(try list.decode(ExtractionRef.self)) }
            } else {
                extractions = [try c.decode(ExtractionRef.self, forKey: extractionsKey)]
            }
        }
        if extractions.isEmpty {
            throw invalid([extractionsKey], "is missing or empty; list backbones (e.g. efficientnet_lite0) or extraction ids")
        }

        let searchText = try c.decodeIfPresent(String.self, forKey: "search") ?? "grid"
        guard let search = Search(rawValue: searchText.lowercased()) else {
            throw invalid([SweepKey("search")], "must be grid or random, not `\(searchText)`")
        }
        self.search = search
        func int(_ key: SweepKey, _ standard: Int, min lo: Int) throws -> Int {
            guard c.contains(key) else { return standard }
            guard let i = try? Int.read(c.superDecoder(forKey: key)), i >= lo else { throw invalid([key], "must be an integer >= \(lo)") }
            return i
        }
        trials = try int("trials", 20, min: 1)
        if search == .grid && c.contains("trials") { throw invalid([SweepKey("trials")], "only applies to `search: random`") }
        samplerSeed = UInt64(try int("sampler_seed", 0, min: 0))
        repeats = try int("repeats", 1, min: 1)

        defaults = [:]
        if c.contains("defaults") {
            guard let d = try? c.nestedContainer(keyedBy: SweepKey.self, forKey: "defaults") else {
                throw invalid([SweepKey("defaults")], "must be a mapping of head settings")
            }
            for k in d.allKeys { defaults[k.stringValue] = try Self.setting(k, in: d).readValue(d.superDecoder(forKey: k)) }
        }

        // `parameters`: one mapping (one grid), or a list of mappings (a union of grids, as in
        // scikit-learn's ParameterGrid), e.g. linear heads with their own L2 values beside hidden ones.
        var sets: [KeyedDecodingContainer<SweepKey>] = []
        if var list = try? c.nestedUnkeyedContainer(forKey: "parameters") {
            if list.count == 0 { throw invalid([SweepKey("parameters")], "is an empty list") }
            while !list.isAtEnd {
                guard let m = try? list.nestedContainer(keyedBy: SweepKey.self) else {
                    throw invalid(list.codingPath + [SweepKey(intValue: list.currentIndex)],
                                  "must be a mapping of head settings to value lists")
                }
                sets.append(m)
            }
        } else if c.contains("parameters") {
            guard let m = try? c.nestedContainer(keyedBy: SweepKey.self, forKey: "parameters") else {
                throw invalid([SweepKey("parameters")], "must be a mapping of head settings to value lists (or a list of such mappings)")
            }
            sets = [m]
        }
        parameterSets = sets.isEmpty ? [[]] : []
        for m in sets {
            var set: [(name: String, values: Values)] = []
            for k in m.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                let setting = try Self.setting(k, in: m)
                if defaults[k.stringValue] != nil { throw invalid(m.codingPath + [k], "is also in `defaults`; keep one") }
                set.append((k.stringValue, try Self.values(of: setting, m.superDecoder(forKey: k), search: search)))
            }
            parameterSets.append(set)
        }
        if repeats > 1 && parameterSets.contains(where: { $0.contains { $0.name == "seed" } }) {
            throw invalid([SweepKey("repeats")], "with a swept `seed` is ambiguous; use one of them")
        }
    }

    /// The head setting a key of `defaults` or `parameters` names.
    private static func setting(_ k: SweepKey, in m: KeyedDecodingContainer<SweepKey>) throws -> HeadSetting {
        guard let s = HeadConfig.setting(k.stringValue) else {
            throw invalid(m.codingPath + [k], "is not a head setting; known: \(headKeys.joined(separator: ", "))")
        }
        return s
    }

    /// A swept setting's values: a list, a range (random search, numeric settings) or one value.
    private static func values(of setting: HeadSetting, _ d: Decoder, search: Search) throws -> Values {
        if var list = try? d.unkeyedContainer() {
            if list.count == 0 { throw invalid(d.codingPath, "is an empty list") }
            var values: [SweepValue] = []
            while !list.isAtEnd { values.append(try setting.readValue(list.superDecoder())) }
            return .list(values)
        }
        guard let r = try? d.container(keyedBy: SweepKey.self) else { return .list([try setting.readValue(d)]) }
        guard search == .random else {
            throw invalid(d.codingPath, "is a range; ranges need `search: random` (a grid needs a list of values)")
        }
        guard setting.kind == .integer || setting.kind == .number else {
            throw invalid(d.codingPath, "is a range, but `\(setting.key)` takes \(setting.expected): list its values")
        }
        for k in r.allKeys where !["min", "max", "log"].contains(k.stringValue) {
            throw invalid(r.codingPath + [k], "is not a key of ranges; use min, max and log")
        }
        guard r.contains("min"), r.contains("max"), let lo = try? Double.read(r.superDecoder(forKey: "min")),
              let hi = try? Double.read(r.superDecoder(forKey: "max")), lo <= hi else {
            throw invalid(d.codingPath, "range needs numeric `min` <= `max`")
        }
        let log = try r.decodeIfPresent(Bool.self, forKey: "log") ?? false
        if log && lo <= 0 { throw invalid(d.codingPath, "is a log range and needs min > 0") }
        return .range(min: lo, max: hi, log: log, integer: setting.kind == .integer)
    }
}

extension SweepSpec.ExtractionRef: Decodable {
    /// A backbone name, an extraction id (`3` or `id:3`), or a mapping `{id: 3}` / `{backbone: vgg16}`.
    init(from decoder: Decoder) throws {
        if let m = try? decoder.container(keyedBy: SweepKey.self) {
            if let i = try? m.decode(Int64.self, forKey: "id") { self = .id(i); return }
            if let b = try? m.decode(String.self, forKey: "backbone") { self = .backbone(b); return }
        } else if let i = try? decoder.singleValueContainer().decode(Int64.self) {
            self = .id(i); return
        } else if let s = try? decoder.singleValueContainer().decode(String.self), !s.isEmpty {
            guard s.lowercased().hasPrefix("id:") else { self = .backbone(s); return }
            if let i = Int64(s.dropFirst(3).trimmingCharacters(in: .whitespaces)) { self = .id(i); return }
            throw invalid(decoder.codingPath, "must be a backbone name or id:NUMBER, not `\(s)`")
        }
        throw invalid(decoder.codingPath, "is neither a backbone name nor an extraction id")
    }
}

extension SettingValue {
    /// The value in the canonical JSON that sweep and trial keys hash.
    var canonical: CanonicalJSON {
        switch self {
        case .int(let i): return .int(Int64(i))
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s)
        case .null: return .null
        }
    }
}
