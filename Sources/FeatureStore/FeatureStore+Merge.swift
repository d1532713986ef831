import Foundation
import GRDB

/// What `FeatureStore.merge` did.
public struct MergeReport: Codable, Equatable, Sendable {
    public var output: String
    public var inputs: [MergeInputReport]
    /// Totals in the output store after merging.
    public var images: Int
    public var features: Int
    public var extractions: Int
    /// Things worth knowing that did not stop the merge (e.g. shards written by different tool versions).
    public var warnings: [String]

    enum CodingKeys: String, CodingKey { case output, inputs, images, features, extractions, warnings }
}

public struct MergeInputReport: Codable, Equatable, Sendable {
    public var path: String
    public var imagesAdded: Int
    public var extractionsAdded: Int
    public var featuresAdded: Int
    public var failuresAdded: Int
    public var headsAdded: Int

    enum CodingKeys: String, CodingKey {
        case path, imagesAdded = "images_added", extractionsAdded = "extractions_added"
        case featuresAdded = "features_added", failuresAdded = "failures_added", headsAdded = "heads_added"
    }
}

extension FeatureStore {
    /// Combines shard stores into `out` (created if missing; an existing store is added to).
    ///
    /// - Datasets match by root; class lists merge by name (new names append), and image labels
    ///   are remapped by class name, so shards that saw classes in a different order still agree.
    /// - Images are deduplicated by (dataset root, sha256); the first path seen wins.
    /// - Extractions match by (dataset root, settings key); features are deduplicated by
    ///   (settings key, image sha256, aug index). An extraction is finished only if it is
    ///   finished in every store it came from.
    /// - Refused before anything is written: two inputs that hold the same (dataset, backbone,
    ///   weights) with different extraction settings (shards must be extracted identically), a
    ///   damaged input, an input of another schema version, a vector of the wrong size.
    /// - Each input is merged in one transaction: an interrupted merge keeps whole inputs, and
    ///   running it again completes it (everything is deduplicated).
    public static func merge(into out: String, from inputs: [String]) throws -> MergeReport {
        let outPath = absolutePath(out)
        let inputPaths = inputs.map(absolutePath)
        guard !inputPaths.isEmpty else {
            throw StoreError.invalidArgument(path: outPath, reason: "merge needs at least one input store")
        }
        if inputPaths.contains(outPath) {
            throw StoreError.invalidArgument(path: outPath, reason: "the output store is also listed as an input")
        }

        // 1. Read every input's extractions (this also checks header, schema and lineage).
        var summaries: [(path: String, extractions: [ExtractionRecord], roots: [Int64: String])] = []
        for inputPath in inputPaths {
            let input = try FeatureStore(path: inputPath, mode: .readOnly)
            try input.checkFeatureSizes()
            let roots = Dictionary(uniqueKeysWithValues: try input.datasets().map { ($0.id, $0.root) })
            summaries.append((inputPath, try input.extractions(), roots))
            input.close()
        }
        // 2. Refuse mismatched shards before writing anything.
        let warnings = try checkMergeSettings(summaries)

        // 3. Copy each input in one transaction.
        let output = try FeatureStore(path: outPath, mode: .create)
        var reports: [MergeInputReport] = []
        for inputPath in inputPaths {
            reports.append(try output.mergeOne(inputPath))
        }
        let totals = try output.read("counting the merged rows") { db in
            try ["images", "features", "extractions"].map { try Int.fetchOne(db, sql: "SELECT count(*) FROM \($0)") ?? 0 }
        }
        output.close()
        return MergeReport(output: outPath, inputs: reports, images: totals[0], features: totals[1],
                           extractions: totals[2], warnings: warnings)
    }

    /// For each extraction target (dataset root, backbone, weights), every input holding it must
    /// hold it with the same set of settings keys.
    private static func checkMergeSettings(
        _ summaries: [(path: String, extractions: [ExtractionRecord], roots: [Int64: String])]
    ) throws -> [String] {
        var warnings: [String] = []
        // target -> [(file, settingsKey -> record)]
        var byTarget: [String: [(String, [String: ExtractionRecord])]] = [:]
        var targetOrder: [String] = []
        for summary in summaries {
            var perTarget: [String: [String: ExtractionRecord]] = [:]
            for e in summary.extractions {
                let root = summary.roots[e.settings.datasetID] ?? "?"
                let target = "\(e.settings.backbone) (weights \(e.settings.weightsSHA256.prefix(12))) on dataset \(root)"
                perTarget[target, default: [:]][e.settingsKey] = e
            }
            for (target, keys) in perTarget.sorted(by: { $0.key < $1.key }) {
                if byTarget[target] == nil { targetOrder.append(target) }
                byTarget[target, default: []].append((summary.path, keys))
            }
        }
        for target in targetOrder {
            guard let holders = byTarget[target], let (firstFile, firstKeys) = holders.first else { continue }
            for (file, keys) in holders.dropFirst() {
                if Set(keys.keys) != Set(firstKeys.keys) {
                    let mine = keys.values.first { firstKeys[$0.settingsKey] == nil }
                    let theirs = firstKeys.values.first { keys[$0.settingsKey] == nil }
                    var differences: [String] = []
                    if let mine, let theirs {
                        differences = settingsDifferences(mine.settings, theirs.settings)
                    }
                    if differences.isEmpty {
                        differences = ["\(keys.count) settings variant(s) vs \(firstKeys.count)"]
                    }
                    throw StoreError.mergeSettingsDiffer(file: file, otherFile: firstFile, target: target, differences: differences)
                }
                for (key, record) in keys {
                    if let other = firstKeys[key], other.settings.toolVersion != record.settings.toolVersion {
                        warnings.append("\(target): \(file) was written by tool \(record.settings.toolVersion), \(firstFile) by \(other.settings.toolVersion)")
                    }
                }
            }
        }
        return warnings
    }

    static func settingsDifferences(_ a: ExtractionSettings, _ b: ExtractionSettings) -> [String] {
        var result: [String] = []
        func compare<T: Equatable>(_ name: String, _ x: T, _ y: T) { if x != y { result.append("\(name): \(x) vs \(y)") } }
        compare("preprocessing", a.preprocessing, b.preprocessing)
        compare("augmentation_policy", a.augmentationPolicy, b.augmentationPolicy)
        compare("image_size", a.imageSize, b.imageSize)
        compare("fit", a.fit, b.fit)
        compare("precision", a.precision, b.precision)
        compare("feature_dtype", a.featureDType.rawValue, b.featureDType.rawValue)
        compare("feature_dim", a.featureDim, b.featureDim)
        compare("seed", a.seed, b.seed)
        return result
    }

    /// Copies one input (attached read-only as `src`) in one transaction, using SQL joins on
    /// natural keys (dataset root, class name, image sha256, settings key) instead of ids.
    private func mergeOne(_ inputPath: String) throws -> MergeInputReport {
        try requireWritable("merge stores into it")
        let escaped = inputPath.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? inputPath
        var report = MergeInputReport(path: inputPath, imagesAdded: 0, extractionsAdded: 0, featuresAdded: 0,
                                      failuresAdded: 0, headsAdded: 0)
        try storeErrors("merging \(inputPath)") {
            try database.writeWithoutTransaction { db in
                try storeErrors("attaching \(inputPath) for merging") {
                    try db.execute(sql: "ATTACH DATABASE ? AS src", arguments: ["file:\(escaped)?mode=ro"])
                }
                defer { try? db.execute(sql: "DETACH DATABASE src") }
                try db.inTransaction(.immediate) {
                    try mergeAttached(db, inputPath, into: &report)
                    return .commit
                }
            }
        }
        return report
    }

    private func mergeAttached(_ db: Database, _ inputPath: String, into report: inout MergeInputReport) throws {
        /// Runs one statement; returns the number of rows it changed.
        func run(_ context: String, _ sql: String) throws -> Int {
            try storeErrors(context) { try db.execute(sql: sql) }
            return db.changesCount
        }
        // Datasets and class lists (small): as `dataset(root:classes:)` does, so class lists only append.
        for source in try Row.fetchAll(db, sql: "SELECT id, root, name FROM src.datasets ORDER BY id") {
            let names = try String.fetchAll(db, sql: "SELECT name FROM src.classes WHERE dataset_id = ? ORDER BY class_index",
                                            arguments: [source[0] as Int64])
            _ = try FeatureStore.dataset(db, root: source[1], classes: names, name: source[2])
        }

        report.imagesAdded = try run("merging images of \(inputPath)", """
            INSERT INTO main.images(dataset_id, sha256, path, class_index, split, width, height)
            SELECT md.id, si.sha256, si.path, mc.class_index, si.split, si.width, si.height
            FROM src.images si
            JOIN src.datasets sd ON sd.id = si.dataset_id
            JOIN main.datasets md ON md.root = sd.root
            LEFT JOIN src.classes sc ON sc.dataset_id = si.dataset_id AND sc.class_index = si.class_index
            LEFT JOIN main.classes mc ON mc.dataset_id = md.id AND mc.name = sc.name
            WHERE (si.class_index IS NULL) = (mc.class_index IS NULL) ORDER BY si.id
            ON CONFLICT(dataset_id, sha256) DO NOTHING
            """)

        // Stores of schema 4 and later also carry the files behind each image and exclusions.
        if try Int.fetchOne(db, sql: "SELECT max(version) FROM src.schema_migrations") ?? 0 >= 4 {
            _ = try run("merging image exclusions of \(inputPath)", """
                UPDATE main.images SET exclusion = (SELECT si.exclusion FROM src.images si
                    JOIN src.datasets sd ON sd.id = si.dataset_id
                    JOIN main.datasets md ON md.root = sd.root
                    WHERE md.id = main.images.dataset_id AND si.sha256 = main.images.sha256)
                WHERE exclusion IS NULL AND EXISTS (SELECT 1 FROM src.images si
                    JOIN src.datasets sd ON sd.id = si.dataset_id
                    JOIN main.datasets md ON md.root = sd.root
                    WHERE md.id = main.images.dataset_id AND si.sha256 = main.images.sha256 AND si.exclusion IS NOT NULL)
                """)
            _ = try run("merging image files of \(inputPath)", """
                INSERT INTO main.image_files(dataset_id, path, sha256, class_index, split)
                SELECT md.id, sf.path, sf.sha256, mc.class_index, sf.split
                FROM src.image_files sf
                JOIN src.datasets sd ON sd.id = sf.dataset_id
                JOIN main.datasets md ON md.root = sd.root
                LEFT JOIN src.classes sc ON sc.dataset_id = sf.dataset_id AND sc.class_index = sf.class_index
                LEFT JOIN main.classes mc ON mc.dataset_id = md.id AND mc.name = sc.name
                WHERE (sf.class_index IS NULL) = (mc.class_index IS NULL)
                ON CONFLICT(dataset_id, path) DO NOTHING
                """)
        }

        let columns = ExtractionRow.contentColumns
        report.extractionsAdded = try run("merging extractions of \(inputPath)", """
            INSERT INTO main.extractions(dataset_id, \(columns.joined(separator: ", ")))
            SELECT md.id, \(columns.map { "se.\($0)" }.joined(separator: ", "))
            FROM src.extractions se
            JOIN src.datasets sd ON sd.id = se.dataset_id
            JOIN main.datasets md ON md.root = sd.root
            WHERE 1 ORDER BY se.id
            ON CONFLICT(dataset_id, settings_key) DO NOTHING
            """)
        // Finished only if finished everywhere (NULL is sticky: max(NULL, x) is NULL).
        _ = try run("merging extraction states of \(inputPath)", """
            UPDATE main.extractions AS me SET finished_at = max(me.finished_at, s.finished_at)
            FROM (SELECT md.id AS dataset_id, se.settings_key, se.finished_at
                  FROM src.extractions se
                  JOIN src.datasets sd ON sd.id = se.dataset_id
                  JOIN main.datasets md ON md.root = sd.root) AS s
            WHERE me.dataset_id = s.dataset_id AND me.settings_key = s.settings_key
            """)

        /// Joins the rows of src table `alias` to their extraction in main (`me`) and, with `image`, to their image (`mi`).
        func toMain(_ alias: String, image: Bool = true) -> String {
            """
            JOIN src.extractions se ON se.id = \(alias).extraction_id
            JOIN src.datasets sd ON sd.id = se.dataset_id
            JOIN main.datasets md ON md.root = sd.root
            JOIN main.extractions me ON me.dataset_id = md.id AND me.settings_key = se.settings_key
            """ + (image ? """

            JOIN src.images si ON si.id = \(alias).image_id
            JOIN main.images mi ON mi.dataset_id = md.id AND mi.sha256 = si.sha256
            """ : "")
        }
        report.featuresAdded = try run("merging features of \(inputPath)", """
            INSERT INTO main.features(extraction_id, image_id, aug_index, vector)
            SELECT me.id, mi.id, sf.aug_index, sf.vector
            FROM src.features sf
            \(toMain("sf"))
            WHERE 1 ORDER BY sf.id
            ON CONFLICT(extraction_id, image_id, aug_index) DO NOTHING
            """)
        // Stores of schema 5 and later may cache block inputs (`extract --cache-blocks`); inputs are
        // merged only where the output's definition has the same dtype.
        if try Schema.hasBlockCache(db), try Int.fetchOne(db, sql: "SELECT max(version) FROM src.schema_migrations") ?? 0 >= 5 {
            _ = try run("merging block definitions of \(inputPath)", """
                INSERT INTO main.block_definitions(extraction_id, blocks, definition, input_channels, input_height, input_width,
                                                   dtype, tensor_index, tensors)
                SELECT me.id, sb.blocks, sb.definition, sb.input_channels, sb.input_height, sb.input_width, sb.dtype,
                       sb.tensor_index, sb.tensors
                FROM src.block_definitions sb
                \(toMain("sb", image: false))
                WHERE 1 ON CONFLICT(extraction_id, blocks) DO NOTHING
                """)
            _ = try run("merging block inputs of \(inputPath)", """
                INSERT INTO main.block_inputs(extraction_id, blocks, image_id, aug_index, vector)
                SELECT me.id, sb.blocks, mi.id, sb.aug_index, sb.vector
                FROM src.block_inputs sb
                \(toMain("sb"))
                JOIN src.block_definitions sdef ON sdef.extraction_id = sb.extraction_id AND sdef.blocks = sb.blocks
                JOIN main.block_definitions mdef ON mdef.extraction_id = me.id AND mdef.blocks = sb.blocks AND mdef.dtype = sdef.dtype
                WHERE 1 ON CONFLICT(extraction_id, image_id, aug_index, blocks) DO NOTHING
                """)
        }

        report.failuresAdded = try run("merging failures of \(inputPath)", """
            INSERT INTO main.failures(dataset_id, extraction_id, path, reason, created_at)
            SELECT md.id, me.id, sfl.path, sfl.reason, sfl.created_at
            FROM src.failures sfl
            LEFT JOIN src.datasets sd ON sd.id = sfl.dataset_id
            LEFT JOIN main.datasets md ON md.root = sd.root
            LEFT JOIN src.extractions se ON se.id = sfl.extraction_id
            LEFT JOIN src.datasets sd2 ON sd2.id = se.dataset_id
            LEFT JOIN main.datasets md2 ON md2.root = sd2.root
            LEFT JOIN main.extractions me ON me.dataset_id = md2.id AND me.settings_key = se.settings_key
            WHERE NOT EXISTS (SELECT 1 FROM main.failures f
                WHERE f.path = sfl.path AND f.reason = sfl.reason AND f.created_at = sfl.created_at
                  AND f.dataset_id IS md.id AND f.extraction_id IS me.id)
            ORDER BY sfl.id
            """)

        _ = try run("merging sweeps of \(inputPath)", """
            INSERT INTO main.sweeps(name, config, created_at)
            SELECT name, config, created_at FROM src.sweeps WHERE 1 ORDER BY id
            ON CONFLICT(name) DO NOTHING
            """)
        report.headsAdded = try run("merging heads of \(inputPath)", """
            INSERT INTO main.heads(extraction_id, config, class_names, weights, metrics, curves, created_at, sweep_id, trial_key)
            SELECT me.id, h.config, h.class_names, h.weights, h.metrics, h.curves, h.created_at, ms.id, h.trial_key
            FROM src.heads h
            JOIN src.extractions se ON se.id = h.extraction_id
            JOIN src.datasets sd ON sd.id = se.dataset_id
            JOIN main.datasets md ON md.root = sd.root
            JOIN main.extractions me ON me.dataset_id = md.id AND me.settings_key = se.settings_key
            LEFT JOIN src.sweeps ss ON ss.id = h.sweep_id
            LEFT JOIN main.sweeps ms ON ms.name = ss.name
            WHERE h.sweep_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM main.heads x
                WHERE x.sweep_id IS NULL AND x.extraction_id = me.id AND x.created_at = h.created_at AND x.config = h.config)
            ORDER BY h.id
            ON CONFLICT(sweep_id, trial_key) DO NOTHING
            """)
    }
}
