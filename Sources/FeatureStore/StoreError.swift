import Foundation
import GRDB

/// Everything that can go wrong with a feature store.
///
/// Every message names the store file (and the row, when one row is at fault) and says what to do,
/// because the two programs sharing the store only meet through these messages.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened at all (missing, missing directory, permissions).
    case cannotOpen(path: String, reason: String)
    /// The file is a SQLite database, but not one written by this workbench.
    case notAFeatureStore(path: String, reason: String)
    /// The file is damaged (random bytes, truncated, bad page). It was not modified.
    case corrupt(path: String, reason: String)
    /// The store was written by a newer version of the tools.
    case newerSchema(path: String, fileVersion: Int, toolVersion: Int)
    /// The store is older than this tool and must be migrated, but was opened read-only.
    case needsMigration(path: String, fileVersion: Int, toolVersion: Int)
    /// The migrations recorded in the file are not the ones this tool knows (a different lineage).
    case unknownMigration(path: String, version: Int, name: String, expected: String)
    /// A write was refused because the store (or its file) is read-only.
    case readOnly(path: String, reason: String)
    /// The disk (or the configured size limit) is full. Earlier committed batches are kept.
    case diskFull(path: String, reason: String)
    /// Another connection held the write lock for longer than the busy timeout.
    case busy(path: String, reason: String)
    /// A uniqueness / foreign-key / check constraint failed.
    case constraint(path: String, reason: String)
    /// A stored feature vector does not have the size its extraction promises.
    case dimensionMismatch(path: String, row: String, expectedBytes: Int, actualBytes: Int)
    /// A caller passed something the store cannot accept (bad split, unknown class index...).
    case invalidArgument(path: String, reason: String)
    /// A record that was asked for does not exist.
    case notFound(path: String, what: String)
    /// Two stores being merged hold the same extraction target with different settings.
    case mergeSettingsDiffer(file: String, otherFile: String, target: String, differences: [String])
    /// Reading or writing an export file failed.
    case io(path: String, reason: String)
    /// Any other SQLite failure, with the SQLite result code.
    case sqlite(path: String, code: Int32, message: String, context: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open feature store \(path): \(reason). Check the path and its permissions, or create it with the extractor."
        case let .notAFeatureStore(path, reason):
            return "\(path) is a SQLite database but not a feature store (\(reason)). It was not modified; pass the path of a store written by `extract`."
        case let .corrupt(path, reason):
            return "feature store \(path) is damaged (\(reason)). The file was not modified; restore it from a backup or re-run `extract` into a new store path."
        case let .newerSchema(path, fileVersion, toolVersion):
            return "feature store \(path) has schema version \(fileVersion), but this tool only knows versions up to \(toolVersion). Upgrade the tool (the file was not modified)."
        case let .needsMigration(path, fileVersion, toolVersion):
            return "feature store \(path) has schema version \(fileVersion) and this tool needs version \(toolVersion); it was opened read-only, so it cannot be migrated. Open it once read-write (e.g. run `extract` or `train-head` on it) to migrate."
        case let .unknownMigration(path, version, name, expected):
            return "feature store \(path) records migration \(version) as \"\(name)\", but this tool's migration \(version) is \"\(expected)\". The file was written by an incompatible tool; use the matching tool version."
        case let .readOnly(path, reason):
            return "cannot write to feature store \(path): \(reason). Everything committed before this write is kept. Make the file and its directory writable, or open the store read-write."
        case let .diskFull(path, reason):
            return "feature store \(path) could not grow: \(reason). Everything committed before this batch is kept; free disk space and re-run (rows already stored are skipped)."
        case let .busy(path, reason):
            return "feature store \(path) is locked by another process (\(reason)). Wait for the other writer to finish, then retry."
        case let .constraint(path, reason):
            return "feature store \(path) refused a row: \(reason)."
        case let .dimensionMismatch(path, row, expected, actual):
            return "feature store \(path): \(row) holds \(actual) bytes but its extraction requires \(expected) bytes. The row is damaged or was written by a broken tool; delete the store and re-run `extract`."
        case let .invalidArgument(path, reason):
            return "feature store \(path): \(reason)."
        case let .notFound(path, what):
            return "feature store \(path) has no \(what). Run `info` on the store to see what it holds."
        case let .mergeSettingsDiffer(file, other, target, differences):
            return "cannot merge \(file) with \(other): both hold \(target) but with different extraction settings (\(differences.joined(separator: "; "))). Shards must be extracted with identical settings; re-run the odd shard. Nothing was merged from \(file)."
        case let .io(path, reason):
            return "cannot write \(path): \(reason). Check the directory exists and has free space."
        case let .sqlite(path, code, message, context):
            return "feature store \(path): SQLite error \(code) (\(message)) while \(context)."
        }
    }
}

extension StoreError {
    /// The store error a user can act on for a SQLite error met while doing `context`.
    init(_ error: DatabaseError, path: String, context: String) {
        let message = error.message ?? "\(error.resultCode)"
        let reason = "\(message) while \(context)"
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: self = .corrupt(path: path, reason: reason)
        case .SQLITE_READONLY: self = .readOnly(path: path, reason: reason)
        case .SQLITE_FULL: self = .diskFull(path: path, reason: reason)
        case .SQLITE_BUSY, .SQLITE_LOCKED: self = .busy(path: path, reason: reason)
        case .SQLITE_CONSTRAINT: self = .constraint(path: path, reason: reason)
        case .SQLITE_CANTOPEN: self = .cannotOpen(path: path, reason: reason)
        default:
            if error.extendedResultCode == .SQLITE_IOERR_WRITE || error.extendedResultCode == .SQLITE_IOERR_FSYNC {
                // ENOSPC usually surfaces as a write/fsync I/O error rather than SQLITE_FULL.
                self = .diskFull(path: path, reason: "\(reason) (the disk may be full)")
            } else {
                self = .sqlite(path: path, code: error.extendedResultCode.rawValue, message: message, context: context)
            }
        }
    }
}
