import Foundation
import GRDB

/// The SQLite feature store shared by `extract` (writes features) and `train-head` (reads features,
/// writes heads). The file is the only contract between the two programs.
///
/// - A `FeatureStore` is a GRDB `DatabasePool` on the file (WAL mode): one writer connection and
///   reader connections that see consistent snapshots while the writer commits. Several stores,
///   threads or processes may use the same file at once. One `FeatureStore` value is meant for one
///   thread at a time (callers that share one serialize their calls).
/// - Every write method is one transaction: after a crash (even `kill -9`) the file holds whole
///   batches only.
/// - Opening a file written by a newer tool fails without touching it; an older file is migrated.
public final class FeatureStore {
    /// The schema version this code writes (the number of the last migration).
    public static let schemaVersion = Schema.currentVersion

    /// Absolute path of the store file.
    public let path: String
    public let mode: OpenMode
    /// A `DatabasePool` for every mode but `.immutable` (a read-only `DatabaseQueue` on a URI).
    let database: any DatabaseWriter

    /// How long a write waits for another writer's lock before failing with `.busy`.
    public static let busyTimeoutMilliseconds: Int32 = 10_000

    public init(path: String, mode: OpenMode = .readWrite) throws {
        let absolute = FeatureStore.absolutePath(path)
        self.path = absolute
        self.mode = mode
        var isNew = try FeatureStore.prepareFile(absolute, mode: mode)
        if isNew && !FileManager.default.fileExists(atPath: absolute) {
            try FeatureStore.create(absolute)
            isNew = false
        }
        let writable = mode == .readWrite || mode == .create
        do {
            if mode == .immutable {
                // `file:` URIs are understood because SQLite is built with SQLITE_USE_URI (Debian's is).
                let escaped = absolute.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? absolute
                database = try DatabaseQueue(path: "file:\(escaped)?immutable=1", configuration: FeatureStore.configuration(mode: mode))
                try database.read { db in try FeatureStore.checkSchema(db, path: absolute, writable: false) }
            } else {
                // Every check runs on a read-only connection first: the pool switches the file to WAL
                // and writes to it as it opens, and a damaged, foreign or newer file must stay untouched.
                if !isNew {
                    let inspector = try DatabaseQueue(path: absolute, configuration: FeatureStore.configuration(mode: .readOnly))
                    defer { try? inspector.close() }
                    try inspector.read { db in try FeatureStore.checkSchema(db, path: absolute, writable: writable) }
                }
                database = try DatabasePool(path: absolute, configuration: FeatureStore.configuration(mode: mode))
            }
        } catch let error as DatabaseError {
            if error.resultCode == .SQLITE_READONLY && writable {
                throw StoreError.readOnly(path: absolute, reason: "the file or its directory is not writable (SQLite opened it read-only); open it with read-only mode to read it")
            }
            throw StoreError(error, path: absolute, context: "opening the store")
        }
        if writable { try migrate() }
    }

    /// Checks the path before SQLite touches it; true when the store is to be created.
    private static func prepareFile(_ path: String, mode: OpenMode) throws -> Bool {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw StoreError.cannotOpen(path: path, reason: "it is a directory") }
            try StoreFile.checkHeader(path: path)
            let writable = mode == .readWrite || mode == .create
            let directory = (path as NSString).deletingLastPathComponent
            if writable && !(fileManager.isWritableFile(atPath: path) && fileManager.isWritableFile(atPath: directory)) {
                throw StoreError.readOnly(path: path, reason: "the file or its directory is not writable; open it with read-only mode to read it")
            }
            if StoreFile.fileSize(path) ?? 0 == 0 {
                guard writable else { throw StoreError.notAFeatureStore(path: path, reason: "the file is empty") }
                return true
            }
            return false
        }
        guard mode == .create else {
            throw StoreError.cannotOpen(path: path, reason: "no such file")
        }
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError.cannotOpen(path: path, reason: "cannot create directory \(directory): \(error.localizedDescription)")
        }
        return true
    }

    /// Builds a new store, schema and all, in a temporary file beside `path` and links it into
    /// place, so no other process ever opens a store that is still being set up. When another
    /// process links its store first, that one is kept.
    private static func create(_ path: String) throws {
        let temporary = "\(path).creating-\(UUID().uuidString)"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temporary + suffix) } }
        do {
            // One connection in rollback-journal mode: every commit is in the file itself when it closes,
            // nothing is left in a -wal file that the link below would not carry (a reader then saw a
            // header promising one page more than the file had). The first open of the store sets WAL.
            let queue = try DatabaseQueue(path: temporary, configuration: configuration(mode: .create))
            try Schema.migrator.migrate(queue)
            try queue.close()
        } catch let error as DatabaseError {
            throw StoreError(error, path: path, context: "creating the store")
        }
        if link(temporary, path) != 0 && errno != EEXIST && rename(temporary, path) != 0 {
            throw StoreError.cannotOpen(path: path, reason: "cannot put the new store in place: \(String(cString: strerror(errno)))")
        }
    }

    /// The settings of every connection to a store.
    private static func configuration(mode: OpenMode) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = !(mode == .readWrite || mode == .create)
        configuration.busyMode = .timeout(TimeInterval(busyTimeoutMilliseconds) / 1000)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            if !db.configuration.readonly {
                // Page size only takes effect on an empty file, before WAL. 64 KiB pages keep vectors
                // of 1-16 KiB mostly on-page (4 KiB pages would spread a 8 KiB vector over 3 pages).
                if try Int.fetchOne(db, sql: "PRAGMA page_count") == 0 {
                    try db.execute(sql: "PRAGMA page_size = 65536")
                    try db.execute(sql: "PRAGMA application_id = \(Schema.applicationID)")
                }
                // Checkpoint every 64 pages (4 MiB) instead of SQLite's 1,000 (64 MiB at this page
                // size): the committing thread (extract's writer, while the engine computes the next
                // batch) then copies the -wal file into the store as it goes, and the checkpoint left
                // for close is at most 4 MiB. With 1,000, a whole scenes6 run (16.5 MB, Lite0) was
                // copied and synced at close: 0.067-0.079 s from the end of the run to the return from
                // close, against 0.018-0.019 s with 64 pages and 0.017 s with 32 (one-off timers
                // not committed, 3 alternating runs each).
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 64")
                // Keep the -wal file from staying bigger than 64 MiB after a long transaction.
                try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            }
            // No mmap_size: it saved only ~10% of load time, and a file truncated under a mapping
            // kills the process with SIGBUS instead of returning an error.
            try db.execute(sql: "PRAGMA cache_size = -32768") // 32 MiB page cache per connection
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        // The pool sets WAL mode and synchronous = NORMAL on the writer: in WAL mode commits are
        // atomic and survive a process crash; only a power loss can drop the last few commits.
        return configuration
    }

    /// Closes the connections now (otherwise they close when the store is released). The readers
    /// close first, so the writer is the last connection: it checkpoints and removes the -wal file.
    public func close() {
        (database as? DatabasePool)?.invalidateReadOnlyConnections()
        try? database.close()
    }

    var isWritable: Bool { mode == .readWrite || mode == .create }

    // MARK: access

    /// Runs `body` in one read transaction (one snapshot), or inside the access this thread is
    /// already in (so `readSnapshot` can compose the public methods). SQLite errors become
    /// `StoreError`s naming the store and `what` was being done.
    func read<T>(_ what: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
        try storeErrors(what()) {
            try database.unsafeReentrantRead { db in try FeatureStore.transaction(db, .deferred, body) }
        }
    }

    /// Runs `body` in one write transaction (`BEGIN IMMEDIATE`: the busy timeout applies up front).
    /// Any thrown error rolls the whole batch back.
    func write<T>(_ what: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
        try requireWritable(what())
        return try storeErrors(what()) {
            try database.unsafeReentrantWrite { db in try FeatureStore.transaction(db, .immediate, body) }
        }
    }

    /// `body` in a transaction of `kind`, or in the transaction `db` is already in.
    private static func transaction<T>(_ db: Database, _ kind: Database.TransactionKind, _ body: (Database) throws -> T) throws -> T {
        if db.isInsideTransaction { return try body(db) }
        var result: T?
        try db.inTransaction(kind) {
            result = try body(db)
            return .commit
        }
        return result!
    }

    /// Runs `body`, turning a GRDB error into the `StoreError` a user can act on.
    func storeErrors<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw StoreError(error, path: path, context: what())
        } catch let error as RowDecodingError {
            throw StoreError.corrupt(path: path, reason: "a stored row cannot be read while \(what()): \(error)")
        }
    }

    // MARK: migrations

    /// Refuses files that are not feature stores, that a newer tool wrote, or whose recorded
    /// migrations are not ours; runs on a read-only connection before anything can write.
    private static func checkSchema(_ db: Database, path: String, writable: Bool) throws {
        let objects = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema") ?? 0
        if objects == 0 {
            guard writable else { throw StoreError.notAFeatureStore(path: path, reason: "the file is empty") }
            return
        }
        let applicationID = try Int64.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let hasMigrations = try db.tableExists("schema_migrations")
        if applicationID != Int64(Schema.applicationID) && (applicationID != 0 || !hasMigrations) {
            throw StoreError.notAFeatureStore(path: path, reason: "application_id is \(applicationID), and no schema_migrations table")
        }
        if !hasMigrations {
            throw StoreError.notAFeatureStore(path: path, reason: "it has no schema_migrations table")
        }
        let applied = try Schema.appliedMigrations(db)
        let newest = applied.last?.version ?? 0
        if newest > Schema.currentVersion {
            throw StoreError.newerSchema(path: path, fileVersion: newest, toolVersion: Schema.currentVersion)
        }
        for (version, name) in applied {
            let expected = Schema.migrations.first { $0.version == version }?.name ?? "(none)"
            if expected != name {
                throw StoreError.unknownMigration(path: path, version: version, name: name, expected: expected)
            }
        }
        // Read-only, a store from before the last additive steps still reads (the readers check for
        // what those steps add); older ones must be migrated first.
        if newest < Schema.oldestReadable && !writable {
            throw StoreError.needsMigration(path: path, fileVersion: newest, toolVersion: Schema.currentVersion)
        }
    }

    /// Applies the pending migrations, one transaction each (`Schema.migrator`).
    private func migrate() throws {
        let migrator = Schema.migrator
        try storeErrors("migrating the schema") {
            if try database.read(migrator.hasCompletedMigrations) { return }
            do {
                try migrator.migrate(database)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                // Another process opened the same old store at the same moment and recorded a step
                // between our look and our write: its work is done, ours rolled back.
                if try !database.read(migrator.hasCompletedMigrations) { throw error }
            }
        }
    }

    /// The schema version recorded in the file.
    public func fileSchemaVersion() throws -> Int {
        try read("reading the schema version") { try Schema.appliedMigrations($0).last?.version ?? 0 }
    }

    /// The names of the applied migrations, in order.
    public func appliedMigrationNames() throws -> [String] {
        try read("reading the schema version") { try Schema.appliedMigrations($0).map(\.name) }
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
        try read("reading a snapshot") { _ in try body() }
    }

    /// Runs SQLite's full `PRAGMA integrity_check` (reads the whole file; slow on big stores).
    /// Returns the problems found (empty when the store is intact).
    public func verify() throws -> [String] {
        try read("checking integrity") { db in
            var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            for row in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") {
                problems.append("foreign key violation in \(row[0] as String) row \(row[1] as Int64)")
            }
            return problems
        }
    }

    /// Caps the file at `pages` pages of the store's page size (SQLite `max_page_count`) for the
    /// writer connection; writes beyond it fail with `.diskFull` and roll back their batch. Useful
    /// to bound a store's growth, and to test the disk-full path.
    public func setMaxPageCount(_ pages: Int) throws {
        try requireWritable("change its size limit")
        try storeErrors("setting max_page_count") {
            try database.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = \(pages)") }
        }
    }

    /// The store's page size in bytes.
    public func pageSize() throws -> Int { try read("reading the page size") { try Int.fetchOne($0, sql: "PRAGMA page_size") ?? 0 } }

    /// Checkpoints the WAL into the main file and rebuilds it compactly (`VACUUM`), so the store
    /// is one self-contained file (e.g. before copying it or publishing it for `.immutable` use).
    public func vacuum() throws {
        try requireWritable("be vacuumed")
        try storeErrors("vacuuming") {
            try database.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "VACUUM")
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
        }
    }
}
