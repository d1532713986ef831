import Foundation
import GRDB

/// The files behind each image (for `extract store audit`), images kept out of training, and the
/// dataset's policy for label conflicts.
extension FeatureStore {
    /// Records the scanned files of a dataset (upsert by path): what the audit groups by content.
    public func recordImageFiles(_ files: [ImageFileRecord]) throws {
        try requireWritable("record image files")
        guard !files.isEmpty else { return }
        try write("recording \(files.count) image files") { db in
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO image_files(dataset_id, path, sha256, class_index, split) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(dataset_id, path) DO UPDATE SET sha256 = excluded.sha256, class_index = excluded.class_index,
                    split = excluded.split
                """)
            for f in files {
                try storeErrors("recording image file \(f.path)") {
                    let row = ImageFileRow(f)
                    try upsert.execute(arguments: [row.datasetID, row.path, row.sha256, row.classIndex, row.split.rawValue])
                }
            }
        }
    }

    /// Every recorded file of a dataset, by path.
    public func imageFiles(datasetID: Int64) throws -> [ImageFileRecord] {
        try read("reading the files of dataset \(datasetID)") { db in
            guard try Schema.hasImageFiles(db) else { return [] }
            return try ImageFileRow.filter(Column("dataset_id") == datasetID).order(Column("path")).fetchAll(db).map(\.record)
        }
    }

    /// Images of a dataset kept out of training and evaluation, with the reason.
    public func excludedImages(datasetID: Int64) throws -> [ImageRecord] {
        try read("reading the excluded images of dataset \(datasetID)") { db in
            guard try Schema.hasImageFiles(db) else { return [] }
            return try ImageRow.filter(Column("dataset_id") == datasetID && Column("exclusion") != nil)
                .order(Column("path")).fetchAll(db).map(\.record)
        }
    }

    /// `drop`, `keep-first` or `keep-last` (see `extract --conflicts`).
    public func conflictPolicy(datasetID: Int64) throws -> String {
        try read("reading the conflict policy of dataset \(datasetID)") { db in
            guard try Schema.hasImageFiles(db) else { return "drop" }
            return try String.fetchOne(db, sql: "SELECT conflict_policy FROM datasets WHERE id = ?", arguments: [datasetID]) ?? "drop"
        }
    }

    public func setConflictPolicy(datasetID: Int64, _ policy: String) throws {
        try requireWritable("record the conflict policy")
        try write("recording the conflict policy of dataset \(datasetID)") { db in
            try db.execute(sql: "UPDATE datasets SET conflict_policy = ? WHERE id = ?", arguments: [policy, datasetID])
        }
    }
}
