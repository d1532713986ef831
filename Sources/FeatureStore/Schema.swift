import Foundation
import GRDB

/// One named, ordered schema step. Steps are append-only: once released, a step's SQL never
/// changes (a store records which steps it has, by number and name), new needs get a new step.
struct Migration: Sendable {
    let version: Int
    let name: String
    let sql: String
    /// The step rebuilds tables (SQLite cannot change a column's constraints in place): it runs with
    /// foreign keys off, so dropping the old table cascades nowhere, and they are checked before commit.
    var rebuildsTables = false
}

/// The schema, as the ordered list of migrations that build it, run by GRDB's `DatabaseMigrator`.
///
/// The version of a store is the number of the last step applied, recorded in `schema_migrations`
/// (and mirrored in `PRAGMA user_version` so `sqlite3 file 'PRAGMA user_version'` shows it). That
/// table is the store's own record, read by every tool version; GRDB keeps its own list of applied
/// step names in `grdb_migrations`, which stores written before GRDB do not have.
enum Schema {
    /// Marks the file as ours (`PRAGMA application_id`), ASCII "TWFS" (transfer workbench store).
    static let applicationID: Int32 = 0x5457_4653

    /// The bookkeeping table itself; created before step 1 and never changed.
    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations(
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );
        """

    /// The steps, by name. A step that `schema_migrations` already records (a store written before
    /// GRDB, or by a process that migrated it at the same moment) only gets recorded for GRDB.
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            // Steps that only create tables and indexes keep foreign keys on (no full-file check).
            migrator.registerMigration(migration.name, foreignKeyChecks: migration.rebuildsTables ? .deferred : .immediate) { db in
                try db.execute(sql: migrationsTable)
                let newest = try Int.fetchOne(db, sql: "SELECT max(version) FROM schema_migrations") ?? 0
                guard newest < migration.version else { return }
                try db.execute(sql: migration.sql)
                try db.execute(sql: "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                               arguments: [migration.version, migration.name, Timestamp.string()])
                try db.execute(sql: "PRAGMA user_version = \(migration.version)")
            }
        }
        return migrator
    }()

    /// The steps a store records, in order (empty for a new file).
    static func appliedMigrations(_ db: Database) throws -> [(version: Int, name: String)] {
        guard try db.tableExists("schema_migrations") else { return [] }
        return try Row.fetchAll(db, sql: "SELECT version, name FROM schema_migrations ORDER BY version").map { ($0[0], $0[1]) }
    }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "create-datasets-images-extractions-features", sql: """
            CREATE TABLE datasets(
                id INTEGER PRIMARY KEY,
                root TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            -- The class list is part of the dataset: indices never shift, new classes append.
            CREATE TABLE classes(
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                class_index INTEGER NOT NULL CHECK(class_index >= 0),
                name TEXT NOT NULL,
                PRIMARY KEY(dataset_id, class_index),
                UNIQUE(dataset_id, name)
            );
            -- An image is its content: same sha256 = same image (a rename only updates path).
            CREATE TABLE images(
                id INTEGER PRIMARY KEY,
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                sha256 TEXT NOT NULL,
                path TEXT NOT NULL,
                class_index INTEGER NOT NULL,
                split TEXT NOT NULL CHECK(split IN ('train', 'test')),
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                UNIQUE(dataset_id, sha256),
                FOREIGN KEY(dataset_id, class_index) REFERENCES classes(dataset_id, class_index)
            );
            -- One row per distinct set of settings per dataset (settings_key = sha256 of them).
            CREATE TABLE extractions(
                id INTEGER PRIMARY KEY,
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                settings_key TEXT NOT NULL,
                backbone TEXT NOT NULL,
                weights_sha256 TEXT NOT NULL,
                weights_source TEXT NOT NULL,
                preprocessing TEXT NOT NULL,
                augmentation_policy TEXT NOT NULL,
                augmentation_hash TEXT NOT NULL,
                image_size INTEGER NOT NULL,
                fit TEXT NOT NULL,
                precision TEXT NOT NULL,
                feature_dtype TEXT NOT NULL CHECK(feature_dtype IN ('f32', 'f16')),
                feature_dim INTEGER NOT NULL CHECK(feature_dim > 0),
                tool_version TEXT NOT NULL,
                seed INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                finished_at TEXT,
                UNIQUE(dataset_id, settings_key)
            );
            -- Vectors are little-endian f32 or f16 (per extraction); size checked on every read.
            CREATE TABLE features(
                id INTEGER PRIMARY KEY,
                extraction_id INTEGER NOT NULL REFERENCES extractions(id) ON DELETE CASCADE,
                image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                aug_index INTEGER NOT NULL CHECK(aug_index >= 0),
                vector BLOB NOT NULL,
                UNIQUE(extraction_id, image_id, aug_index)
            );
            CREATE TABLE failures(
                id INTEGER PRIMARY KEY,
                dataset_id INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
                extraction_id INTEGER REFERENCES extractions(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                reason TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            """),
        Migration(version: 2, name: "create-sweeps-heads", sql: """
            CREATE TABLE sweeps(
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                config TEXT NOT NULL CHECK(json_valid(config)),
                created_at TEXT NOT NULL
            );
            CREATE TABLE heads(
                id INTEGER PRIMARY KEY,
                extraction_id INTEGER NOT NULL REFERENCES extractions(id) ON DELETE CASCADE,
                config TEXT NOT NULL CHECK(json_valid(config)),
                class_names TEXT NOT NULL CHECK(json_valid(class_names)),
                weights BLOB NOT NULL,
                metrics TEXT NOT NULL CHECK(json_valid(metrics)),
                curves TEXT NOT NULL CHECK(json_valid(curves)),
                created_at TEXT NOT NULL,
                sweep_id INTEGER REFERENCES sweeps(id) ON DELETE CASCADE,
                trial_key TEXT,
                CHECK((sweep_id IS NULL) = (trial_key IS NULL)),
                UNIQUE(sweep_id, trial_key)
            );
            """),
        Migration(version: 3, name: "add-lookup-indexes", sql: """
            -- Foreign-key children need indexes or every parent delete scans the table.
            CREATE INDEX images_by_path ON images(dataset_id, path);
            CREATE INDEX features_by_image ON features(image_id);
            CREATE INDEX failures_by_extraction ON failures(extraction_id);
            CREATE INDEX failures_by_dataset ON failures(dataset_id);
            CREATE INDEX heads_by_extraction ON heads(extraction_id);
            """),
        Migration(version: 4, name: "add-image-files-and-exclusions", sql: """
            -- Every file an extraction scanned, with its content hash. An image (its bytes) may be at
            -- several paths, under several classes or splits: what `extract store audit` reads.
            CREATE TABLE image_files(
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                class_index INTEGER NOT NULL,
                split TEXT NOT NULL CHECK(split IN ('train', 'test')),
                PRIMARY KEY(dataset_id, path)
            );
            CREATE INDEX image_files_by_content ON image_files(dataset_id, sha256);
            -- Why an image is kept out of training and evaluation (a label conflict); NULL: it is not.
            ALTER TABLE images ADD COLUMN exclusion TEXT;
            -- What `extract --conflicts` decided for images under two or more classes.
            ALTER TABLE datasets ADD COLUMN conflict_policy TEXT NOT NULL DEFAULT 'drop';
            """),
        Migration(version: 5, name: "add-block-cache", sql: """
            -- `extract --cache-blocks N`: the last N blocks of the backbone and their parameters, as
            -- `train-head --unfreeze M` (M <= N) reads them. definition: the blocks' architecture as
            -- JSON (FineTuneNetwork); input_*: shape of one cached input (channels first); dtype: of the
            -- cached inputs;
            -- tensor_index: JSON [{"name": ..., "shape": [...]}, ...] in blob order; tensors: the
            -- float32 little-endian values of those tensors, concatenated in that order.
            CREATE TABLE block_definitions(
                extraction_id INTEGER NOT NULL REFERENCES extractions(id) ON DELETE CASCADE,
                blocks INTEGER NOT NULL CHECK(blocks >= 1),
                definition TEXT NOT NULL CHECK(json_valid(definition)),
                input_channels INTEGER NOT NULL, input_height INTEGER NOT NULL, input_width INTEGER NOT NULL,
                dtype TEXT NOT NULL CHECK(dtype IN ('f32', 'f16')),
                tensor_index TEXT NOT NULL CHECK(json_valid(tensor_index)),
                tensors BLOB NOT NULL,
                PRIMARY KEY(extraction_id, blocks)
            );
            -- The input of the first of those blocks for each (image, copy), NCHW, in the definition's
            -- dtype (VectorCodec).
            CREATE TABLE block_inputs(
                extraction_id INTEGER NOT NULL,
                blocks INTEGER NOT NULL,
                image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                aug_index INTEGER NOT NULL CHECK(aug_index >= 0),
                vector BLOB NOT NULL,
                PRIMARY KEY(extraction_id, image_id, aug_index, blocks),
                FOREIGN KEY(extraction_id, blocks) REFERENCES block_definitions(extraction_id, blocks) ON DELETE CASCADE
            );
            CREATE INDEX block_inputs_by_image ON block_inputs(image_id);
            """),
        Migration(version: 6, name: "add-finetuned-heads", sql: """
            -- `train-head --unfreeze M`: a head of kind `finetuned` is its row in heads (the head on the
            -- trained blocks' features) plus this row: the blocks trained with it. cached_blocks: the
            -- block cache it was trained from (block_definitions(extraction_id, cached_blocks)); its
            -- first cached_blocks - unfreeze blocks run with the cache's stored tensors. definition: the
            -- trained blocks as JSON (FineTuneNetwork); tensor_index / tensors as in block_definitions.
            CREATE TABLE finetuned_blocks(
                head_id INTEGER PRIMARY KEY REFERENCES heads(id) ON DELETE CASCADE,
                extraction_id INTEGER NOT NULL,
                cached_blocks INTEGER NOT NULL,
                unfreeze INTEGER NOT NULL CHECK(unfreeze >= 1 AND unfreeze <= cached_blocks),
                definition TEXT NOT NULL CHECK(json_valid(definition)),
                tensor_index TEXT NOT NULL CHECK(json_valid(tensor_index)),
                tensors BLOB NOT NULL,
                FOREIGN KEY(extraction_id, cached_blocks) REFERENCES block_definitions(extraction_id, blocks)
            );
            """),
        Migration(version: 7, name: "add-unlabeled-images", sql: """
            -- `extract --unlabeled`: images without a class, split 'unlabeled' and class_index NULL (and
            -- only those). SQLite cannot change a CHECK in place, so images and image_files are rebuilt.
            CREATE TABLE images_v7(
                id INTEGER PRIMARY KEY,
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                sha256 TEXT NOT NULL,
                path TEXT NOT NULL,
                class_index INTEGER,
                split TEXT NOT NULL CHECK(split IN ('train', 'test', 'unlabeled')),
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                exclusion TEXT,
                UNIQUE(dataset_id, sha256),
                CHECK((class_index IS NULL) = (split = 'unlabeled')),
                FOREIGN KEY(dataset_id, class_index) REFERENCES classes(dataset_id, class_index)
            );
            INSERT INTO images_v7(id, dataset_id, sha256, path, class_index, split, width, height, exclusion)
                SELECT id, dataset_id, sha256, path, class_index, split, width, height, exclusion FROM images;
            DROP TABLE images;
            ALTER TABLE images_v7 RENAME TO images;
            CREATE INDEX images_by_path ON images(dataset_id, path);
            CREATE TABLE image_files_v7(
                dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                class_index INTEGER,
                split TEXT NOT NULL CHECK(split IN ('train', 'test', 'unlabeled')),
                PRIMARY KEY(dataset_id, path),
                CHECK((class_index IS NULL) = (split = 'unlabeled'))
            );
            INSERT INTO image_files_v7(dataset_id, path, sha256, class_index, split)
                SELECT dataset_id, path, sha256, class_index, split FROM image_files;
            DROP TABLE image_files;
            ALTER TABLE image_files_v7 RENAME TO image_files;
            CREATE INDEX image_files_by_content ON image_files(dataset_id, sha256);
            """, rebuildsTables: true),
    ]

    static var currentVersion: Int { migrations.last?.version ?? 0 }
    /// The oldest version read-only access accepts without migrating: steps 4, 5 and 6 only add tables
    /// and columns, which readers look for (`hasImageFiles`, `hasBlockCache`, `hasFineTunedHeads`).
    static let oldestReadable = 3

    /// Whether the store has step 4's file list, exclusions and conflict policy.
    static func hasImageFiles(_ db: Database) throws -> Bool { try db.tableExists("image_files") }

    /// Whether the store accepts step 7's unlabeled images.
    static func hasUnlabeledImages(_ db: Database) throws -> Bool {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM schema_migrations WHERE version = 7") ?? 0 > 0
    }

    /// Whether the store has step 5's block cache tables.
    static func hasBlockCache(_ db: Database) throws -> Bool { try db.tableExists("block_inputs") }

    /// Whether the store has step 6's fine-tuned blocks.
    static func hasFineTunedHeads(_ db: Database) throws -> Bool { try db.tableExists("finetuned_blocks") }
}
