import Foundation
import GRDB

extension FeatureStore {
    /// Saves a head and returns its id (one transaction).
    ///
    /// - With `id` set: replaces that head.
    /// - With `sweepID` and `trialKey` set: replaces the head of that trial if it exists (a trial
    ///   re-run after a crash overwrites itself), else inserts.
    /// - Otherwise inserts a new head.
    ///
    /// `config`, `metrics` and `curves` must be valid JSON.
    @discardableResult
    public func saveHead(_ head: HeadRecord) throws -> Int64 {
        let label = try checkHead(head)
        return try write("saving the \(label)") { db in try saveHead(head, in: db) }
    }

    /// Checks a head before saving it; returns how errors name it.
    func checkHead(_ head: HeadRecord) throws -> String {
        try requireWritable("save a head")
        let label = head.trialKey.map { "head for trial \"\($0)\"" } ?? "head for extraction \(head.extractionID)"
        if (head.sweepID == nil) != (head.trialKey == nil) {
            throw StoreError.invalidArgument(path: path, reason: "\(label): sweepID and trialKey must be set together")
        }
        for (name, text) in [("config", head.config), ("metrics", head.metrics), ("curves", head.curves)]
        where FeatureStore.canonicalJSON(text) == nil {
            throw StoreError.invalidArgument(path: path, reason: "\(label): \(name) is not valid JSON: \(text.prefix(200))")
        }
        return label
    }

    /// `saveHead`'s writes, inside a transaction the caller holds (checks done by the caller).
    func saveHead(_ head: HeadRecord, in db: Database) throws -> Int64 {
        var row = try HeadRow(head)
        if let id = head.id {
            do { try row.update(db) } catch is RecordError { throw StoreError.notFound(path: path, what: "head \(id)") }
            return id
        }
        // A trial keeps its id when it is saved again.
        return try row.upsertAndFetch(db, onConflict: ["sweep_id", "trial_key"]).id ?? 0
    }

    /// The head with this id.
    public func head(id: Int64) throws -> HeadRecord {
        guard let head = try heads(HeadRow.filter(key: id)).first else {
            throw StoreError.notFound(path: path, what: "head \(id)")
        }
        return head
    }

    /// Heads trained on one extraction, oldest first.
    public func heads(extractionID: Int64) throws -> [HeadRecord] {
        try heads(HeadRow.filter(Column("extraction_id") == extractionID))
    }

    /// Heads (trials) of one sweep, oldest first.
    public func heads(sweepID: Int64) throws -> [HeadRecord] {
        try heads(HeadRow.filter(Column("sweep_id") == sweepID))
    }

    /// The head saved for a sweep trial, or nil if that trial has not finished yet.
    public func trial(sweepID: Int64, trialKey: String) throws -> HeadRecord? {
        try heads(HeadRow.filter(Column("sweep_id") == sweepID && Column("trial_key") == trialKey)).first
    }

    /// The keys of the finished trials of a sweep (without loading weights), for resuming.
    public func trialKeys(sweepID: Int64) throws -> Set<String> {
        try read("reading the trials of sweep \(sweepID)") { db in
            try String.fetchSet(db, HeadRow.select(Column("trial_key")).filter(Column("sweep_id") == sweepID))
        }
    }

    /// Deletes a head.
    public func deleteHead(id: Int64) throws {
        try write("deleting head \(id)") { db in
            if try !HeadRow.deleteOne(db, key: id) { throw StoreError.notFound(path: path, what: "head \(id)") }
        }
    }

    private func heads(_ request: QueryInterfaceRequest<HeadRow>) throws -> [HeadRecord] {
        try read("reading heads") { db in
            try request.order(Column("id")).fetchAll(db).map { row in
                guard let record = row.record else {
                    throw StoreError.corrupt(path: path, reason: "head \(row.id ?? 0) has class_names that are not a JSON array of strings")
                }
                return record
            }
        }
    }

    // MARK: sweeps

    /// Finds the sweep with this name or creates it with `config`. An existing sweep keeps its
    /// stored config (returned in the record), so a resumed sweep can compare and refuse.
    public func sweep(name: String, config: String) throws -> SweepRecord {
        try requireWritable("record a sweep")
        if FeatureStore.canonicalJSON(config) == nil {
            throw StoreError.invalidArgument(path: path, reason: "sweep \"\(name)\": config is not valid JSON")
        }
        return try write("creating sweep \(name)") { db in
            if let existing = try SweepRow.filter(Column("name") == name).fetchOne(db) { return existing.record }
            var row = SweepRow(name: name, config: config, createdAt: Date())
            try row.insert(db)
            guard let stored = try SweepRow.fetchOne(db, key: row.id) else { throw StoreError.notFound(path: path, what: "sweep \(name)") }
            return stored.record
        }
    }

    /// The sweep with this id, or nil.
    public func sweep(id: Int64) throws -> SweepRecord? {
        try read("reading sweep \(id)") { db in try SweepRow.fetchOne(db, key: id)?.record }
    }

    /// All sweeps, by id.
    public func sweeps() throws -> [SweepRecord] {
        try read("reading sweeps") { db in try SweepRow.order(Column("id")).fetchAll(db).map(\.record) }
    }
}
