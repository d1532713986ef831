import CSQLite
import Foundation

/// The SQLite feature store shared by `extract` (writes features) and `train-head` (reads features,
/// writes heads). The file is the only contract between the two programs.
///
/// - One `FeatureStore` is one SQLite connection. It is not thread-safe: use one per thread
///   (several connections, threads or processes, may use the same file at once; WAL mode lets
///   readers see a consistent snapshot while one writer writes).
/// - Every write method is one transaction: after a crash (even `kill -9`) the file holds whole
///   batches only.
/// - Opening a file written by a newer tool fails without touching it; an older file is migrated.
public final class FeatureStore {
    /// The schema version this code writes (the number of the last migration).
    public static let schemaVersion = Schema.currentVersion

    /// Absolute path of the store file.
    public let path: String
    public let mode: OpenMode
    let connection: Connection

    /// How long a write waits for another writer's lock before failing with `.busy`.
    public static let busyTimeoutMilliseconds: Int32 = 10_000

    public init(path: String, mode: OpenMode = .readWrite) throws {
        let absolute = FeatureStore.absolutePath(path)
        self.path = absolute
        self.mode = mode
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: absolute, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw StoreError.cannotOpen(path: absolute, reason: "it is a directory") }
            try StoreFile.checkHeader(path: absolute)
        } else {
            guard mode == .create else {
                throw StoreError.cannotOpen(path: absolute, reason: "no such file")
            }
            let directory = (absolute as NSString).deletingLastPathComponent
            do {
                try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StoreError.cannotOpen(path: absolute, reason: "cannot create directory \(directory): \(error.localizedDescription)")
            }
        }

        var openPath = absolute
        let flags: Int32
        switch mode {
        case .readOnly: flags = SQLITE_OPEN_READONLY
        case .readWrite: flags = SQLITE_OPEN_READWRITE
        case .create: flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .immutable:
            flags = SQLITE_OPEN_READONLY
            let escaped = absolute.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? absolute
            openPath = "file:\(escaped)?immutable=1"
        }
        connection = try Connection(openPath: openPath, displayPath: absolute, flags: flags)
        try configure()
    }

    /// Closes the connection now (otherwise it closes when the store is released).
    public func close() { connection.close() }

    var isWritable: Bool { mode == .readWrite || mode == .create }

    private func configure() throws {
        sqlite3_busy_timeout(connection.db, FeatureStore.busyTimeoutMilliseconds)
        if isWritable && connection.isReadOnly {
            throw StoreError.readOnly(path: path, reason: "the file or its directory is not writable (SQLite opened it read-only); open it with read-only mode to read it")
        }
        try connection.execute("PRAGMA foreign_keys = ON")
        // The first real read: random bytes or a damaged first page fail here, before any write.
        let objects = try connection.scalarInt("SELECT count(*) FROM sqlite_schema") ?? 0
        if objects == 0 {
            guard isWritable else {
                throw StoreError.notAFeatureStore(path: path, reason: "the file is empty")
            }
            // Page size only takes effect on an empty file, before WAL. 64 KiB pages keep vectors
            // of 1-16 KiB mostly on-page (4 KiB pages would spread a 8 KiB vector over 3 pages).
            try connection.execute("PRAGMA page_size = 65536")
            try connection.execute("PRAGMA application_id = \(Schema.applicationID)")
        } else {
            let applicationID = try connection.scalarInt("PRAGMA application_id") ?? 0
            let hasMigrations = try connection.scalarInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'") ?? 0
            if applicationID != Int64(Schema.applicationID) && (applicationID != 0 || hasMigrations == 0) {
                throw StoreError.notAFeatureStore(path: path, reason: "application_id is \(applicationID), and no schema_migrations table")
            }
            if hasMigrations == 0 {
                throw StoreError.notAFeatureStore(path: path, reason: "it has no schema_migrations table")
            }
        }
        // Check versions before anything below can write to the file.
        let applied = try appliedMigrations()
        try validate(applied: applied)
        if isWritable {
            try connection.execute("PRAGMA journal_mode = WAL", "switching to WAL mode")
            // NORMAL in WAL mode: commits are atomic and survive a process crash; only a power
            // loss can drop the last few commits (never corrupt the file).
            try connection.execute("PRAGMA synchronous = NORMAL")
            // Checkpoints run every 1000 pages (64 MiB); keep the -wal file from staying bigger.
            try connection.execute("PRAGMA journal_size_limit = 67108864")
        }
        // No mmap_size: it saved only ~10% of load time, and a file truncated under a mapping
        // kills the process with SIGBUS instead of returning an error.
        try connection.execute("PRAGMA cache_size = -32768") // 32 MiB page cache
        try connection.execute("PRAGMA temp_store = MEMORY")
        try migrate(applied: applied)
    }

    // MARK: migrations

    private func appliedMigrations() throws -> [(version: Int, name: String)] {
        let exists = try connection.scalarInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'") ?? 0
        guard exists > 0 else { return [] }
        let statement = try connection.prepare("SELECT version, name FROM schema_migrations ORDER BY version")
        defer { statement.reset() }
        var result: [(Int, String)] = []
        while try statement.step() { result.append((statement.int(0), statement.text(1))) }
        return result
    }

    private func validate(applied: [(version: Int, name: String)]) throws {
        let newest = applied.last?.version ?? 0
        if newest > Schema.currentVersion {
            throw StoreError.newerSchema(path: path, fileVersion: newest, toolVersion: Schema.currentVersion)
        }
        for (version, name) in applied {
            guard let known = Schema.migrations.first(where: { $0.version == version }) else {
                throw StoreError.unknownMigration(path: path, version: version, name: name, expected: "(none)")
            }
            if known.name != name {
                throw StoreError.unknownMigration(path: path, version: version, name: name, expected: known.name)
            }
        }
        if newest < Schema.currentVersion && !isWritable {
            throw StoreError.needsMigration(path: path, fileVersion: newest, toolVersion: Schema.currentVersion)
        }
    }

    /// Applies the pending migrations, one transaction each. The applied list is re-read inside
    /// the write lock, so two processes opening an old store at once migrate it exactly once.
    private func migrate(applied: [(version: Int, name: String)]) throws {
        let newest = applied.last?.version ?? 0
        for migration in Schema.migrations where migration.version > newest {
            try connection.transaction(write: true) {
                try connection.execute(Schema.migrationsTable, "creating schema_migrations")
                let nowApplied = try appliedMigrations()
                if nowApplied.contains(where: { $0.version >= migration.version }) { return }
                try connection.execute(migration.sql, "applying migration \(migration.version) \"\(migration.name)\"")
                let insert = try connection.prepare("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)")
                insert.bind(1, migration.version)
                insert.bind(2, migration.name)
                insert.bind(3, Timestamp.string())
                try insert.step("recording migration \(migration.version)")
                insert.reset()
                try connection.execute("PRAGMA user_version = \(migration.version)")
            }
        }
    }

    /// The schema version recorded in the file.
    public func fileSchemaVersion() throws -> Int {
        try appliedMigrations().last?.version ?? 0
    }

    /// The names of the applied migrations, in order.
    public func appliedMigrationNames() throws -> [String] {
        try appliedMigrations().map(\.name)
    }

    // MARK: helpers

    static func absolutePath(_ path: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
        let cwd = FileManager.default.currentDirectoryPath
        return ((cwd as NSString).appendingPathComponent(expanded) as NSString).standardizingPath
    }

    func requireWritable(_ what: String) throws {
        if !isWritable {
            throw StoreError.readOnly(path: path, reason: "the store was opened read-only, so it cannot \(what)")
        }
    }

    /// Runs `body` inside one read transaction, so every read in it sees the same snapshot even
    /// while other connections commit. Reads outside this see the newest committed state.
    public func readSnapshot<T>(_ body: () throws -> T) throws -> T {
        try connection.transaction(write: false, body)
    }

    /// Runs SQLite's full `PRAGMA integrity_check` (reads the whole file; slow on big stores).
    /// Returns the problems found (empty when the store is intact).
    public func verify() throws -> [String] {
        let statement = try connection.prepare("PRAGMA integrity_check")
        defer { statement.reset() }
        var problems: [String] = []
        while try statement.step("checking integrity") {
            let line = statement.text(0)
            if line != "ok" { problems.append(line) }
        }
        let foreignKeys = try connection.prepare("PRAGMA foreign_key_check")
        defer { foreignKeys.reset() }
        while try foreignKeys.step("checking foreign keys") {
            problems.append("foreign key violation in \(foreignKeys.text(0)) row \(foreignKeys.int64(1))")
        }
        return problems
    }

    /// Caps the file at `pages` pages of the store's page size (SQLite `max_page_count`) for this
    /// connection; writes beyond it fail with `.diskFull` and roll back their batch. Useful to
    /// bound a store's growth, and to test the disk-full path.
    public func setMaxPageCount(_ pages: Int) throws {
        try connection.execute("PRAGMA max_page_count = \(pages)")
    }

    /// The store's page size in bytes.
    public func pageSize() throws -> Int { Int(try connection.scalarInt("PRAGMA page_size") ?? 0) }

    /// Checkpoints the WAL into the main file and rebuilds it compactly (`VACUUM`), so the store
    /// is one self-contained file (e.g. before copying it or publishing it for `.immutable` use).
    public func vacuum() throws {
        try requireWritable("be vacuumed")
        try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL")
        try connection.execute("VACUUM", "vacuuming")
        try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL")
    }
}
