import CSQLite
import Foundation

/// SQLite's `SQLITE_TRANSIENT` (a macro Swift cannot import): "copy the bytes now".
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection plus a cache of prepared statements.
///
/// Internal on purpose: the public surface is `FeatureStore`, whose methods speak in records, so
/// no caller ever depends on table layout. Not thread-safe (like the store that owns it).
final class Connection {
    let db: OpaquePointer
    /// The path used in error messages (absolute, as the user will recognise it).
    let path: String
    private var cache: [String: Statement] = [:]

    init(openPath: String, displayPath: String, flags: Int32) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(openPath, &handle, flags | SQLITE_OPEN_URI, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError.cannotOpen(path: displayPath, reason: message)
        }
        db = handle
        path = displayPath
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    private var closed = false
    func close() {
        guard !closed else { return }
        closed = true
        for statement in cache.values { sqlite3_finalize(statement.handle) }
        cache.removeAll()
        sqlite3_close_v2(db)
    }

    var isReadOnly: Bool { sqlite3_db_readonly(db, "main") == 1 }
    var inTransaction: Bool { sqlite3_get_autocommit(db) == 0 }
    var changes: Int { Int(sqlite3_changes(db)) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Maps a SQLite result code to the store error a user can act on.
    func error(_ code: Int32, _ context: String) -> StoreError {
        let message = String(cString: sqlite3_errmsg(db))
        switch code & 0xff {
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return .corrupt(path: path, reason: "\(message) while \(context)")
        case SQLITE_READONLY:
            return .readOnly(path: path, reason: "\(message) while \(context)")
        case SQLITE_FULL:
            return .diskFull(path: path, reason: "\(message) while \(context)")
        case SQLITE_BUSY, SQLITE_LOCKED:
            return .busy(path: path, reason: "\(message) while \(context)")
        case SQLITE_CONSTRAINT:
            return .constraint(path: path, reason: "\(message) while \(context)")
        case SQLITE_CANTOPEN:
            return .cannotOpen(path: path, reason: "\(message) while \(context)")
        default:
            if code == SQLITE_IOERR | (3 << 8) || code == SQLITE_IOERR | (4 << 8) { // IOERR_WRITE, IOERR_FSYNC
                // ENOSPC usually surfaces as a write/fsync I/O error rather than SQLITE_FULL.
                return .diskFull(path: path, reason: "\(message) while \(context) (the disk may be full)")
            }
            return .sqlite(path: path, code: code, message: message, context: context)
        }
    }

    /// Runs one or more SQL statements that return no rows.
    func execute(_ sql: String, _ context: String? = nil) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errorMessage)
        if let errorMessage { sqlite3_free(errorMessage) }
        if rc != SQLITE_OK { throw error(rc, context ?? "running \(sql.prefix(80))") }
    }

    /// A prepared statement, cached by its SQL text (reset and unbound, ready to use).
    func prepare(_ sql: String) throws -> Statement {
        if let cached = cache[sql] {
            sqlite3_reset(cached.handle)
            sqlite3_clear_bindings(cached.handle)
            return cached
        }
        var handle: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard rc == SQLITE_OK, let handle else { throw error(rc, "preparing \(sql.prefix(80))") }
        let statement = Statement(handle: handle, connection: self, sql: sql)
        cache[sql] = statement
        return statement
    }

    /// Finalizes cached statements whose SQL contains `text` (e.g. those naming a database about
    /// to be detached).
    func dropCachedStatements(containing text: String) {
        for (sql, statement) in cache where sql.contains(text) {
            sqlite3_finalize(statement.handle)
            cache[sql] = nil
        }
    }

    /// Reads a single integer (e.g. `PRAGMA user_version`, `SELECT count(*)`).
    func scalarInt(_ sql: String) throws -> Int64? {
        let statement = try prepare(sql)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return statement.isNull(0) ? nil : statement.int64(0)
    }

    func scalarText(_ sql: String) throws -> String? {
        let statement = try prepare(sql)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return statement.optionalText(0)
    }

    /// Runs `body` inside a transaction: `BEGIN IMMEDIATE` for writes (takes the write lock up
    /// front, so the busy timeout applies instead of a deadlock later), `BEGIN` for reads. Nested
    /// calls become savepoints so helpers can compose. Any thrown error rolls the whole batch back.
    func transaction<T>(write: Bool, _ body: () throws -> T) throws -> T {
        if inTransaction {
            try execute("SAVEPOINT nested", "starting a nested transaction")
            do {
                let value = try body()
                try execute("RELEASE nested", "committing a nested transaction")
                return value
            } catch {
                try? execute("ROLLBACK TO nested; RELEASE nested")
                throw error
            }
        }
        try execute(write ? "BEGIN IMMEDIATE" : "BEGIN", write ? "starting a write transaction" : "starting a read transaction")
        do {
            let value = try body()
            try execute("COMMIT", "committing")
            return value
        } catch {
            if inTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }
}

/// A prepared statement. Binding indices are 1-based and columns 0-based, as in SQLite.
final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    let sql: String

    init(handle: OpaquePointer, connection: Connection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Resets for the next row without clearing bindings that stay the same.
    func resetKeepingBindings() { sqlite3_reset(handle) }

    /// Steps once; `true` when a row is available.
    @discardableResult
    func step(_ context: @autoclosure () -> String = "") throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let ctx = context()
        let err = connection.error(rc, ctx.isEmpty ? "running \(sql.prefix(80))" : ctx)
        sqlite3_reset(handle)
        throw err
    }

    // MARK: binding

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    func bind(_ index: Int32, _ value: String) { sqlite3_bind_text(handle, index, value, -1, sqliteTransient) }
    func bindNull(_ index: Int32) { sqlite3_bind_null(handle, index) }
    func bind(_ index: Int32, _ value: Int64?) {
        if let value { bind(index, value) } else { bindNull(index) }
    }
    func bind(_ index: Int32, _ value: String?) {
        if let value { bind(index, value) } else { bindNull(index) }
    }
    func bind(_ index: Int32, _ value: Data) {
        _ = value.withUnsafeBytes { raw in
            // A zero-length blob needs a non-nil pointer or SQLite stores NULL.
            if raw.count == 0 {
                sqlite3_bind_zeroblob(handle, index, 0)
            } else {
                sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), sqliteTransient)
            }
        }
    }
    /// Binds bytes without copying; they must stay valid until the statement is stepped and reset.
    func bindNoCopy(_ index: Int32, _ raw: UnsafeRawBufferPointer) {
        sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), nil)
    }

    // MARK: columns

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    func text(_ column: Int32) -> String {
        guard let cString = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: cString)
    }
    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }
    /// The blob's bytes, valid only until the next step/reset.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let pointer, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }
    func data(_ column: Int32) -> Data {
        let raw = blob(column)
        return raw.count == 0 ? Data() : Data(raw)
    }
}
