import Foundation

extension FeatureStore {
    static let headColumns = """
        id, extraction_id, config, class_names, weights, metrics, curves, created_at, sweep_id, trial_key
        """

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
        try requireWritable("save a head")
        let label = head.trialKey.map { "head for trial \"\($0)\"" } ?? "head for extraction \(head.extractionID)"
        if (head.sweepID == nil) != (head.trialKey == nil) {
            throw StoreError.invalidArgument(path: path, reason: "\(label): sweepID and trialKey must be set together")
        }
        for (name, text) in [("config", head.config), ("metrics", head.metrics), ("curves", head.curves)]
        where FeatureStore.canonicalJSON(text) == nil {
            throw StoreError.invalidArgument(path: path, reason: "\(label): \(name) is not valid JSON: \(text.prefix(200))")
        }
        let classNamesJSON = String(decoding: try JSONEncoder().encode(head.classNames), as: UTF8.self)
        return try connection.transaction(write: true) {
            let statement: Statement
            if let id = head.id {
                statement = try connection.prepare("""
                    UPDATE heads SET extraction_id = ?1, config = ?2, class_names = ?3, weights = ?4, metrics = ?5,
                        curves = ?6, created_at = ?7, sweep_id = ?8, trial_key = ?9 WHERE id = ?10 RETURNING id
                    """)
                statement.bind(10, id)
            } else {
                statement = try connection.prepare("""
                    INSERT INTO heads(extraction_id, config, class_names, weights, metrics, curves, created_at, sweep_id, trial_key)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                    ON CONFLICT(sweep_id, trial_key) DO UPDATE SET
                        extraction_id = excluded.extraction_id, config = excluded.config,
                        class_names = excluded.class_names, weights = excluded.weights, metrics = excluded.metrics,
                        curves = excluded.curves, created_at = excluded.created_at
                    RETURNING id
                    """)
            }
            statement.bind(1, head.extractionID)
            statement.bind(2, head.config)
            statement.bind(3, classNamesJSON)
            statement.bind(4, head.weights)
            statement.bind(5, head.metrics)
            statement.bind(6, head.curves)
            statement.bind(7, Timestamp.string(head.createdAt))
            statement.bind(8, head.sweepID)
            statement.bind(9, head.trialKey)
            defer { statement.reset() }
            guard try statement.step("saving \(label)") else {
                throw StoreError.notFound(path: path, what: "head \(head.id.map(String.init) ?? "?") to replace")
            }
            return statement.int64(0)
        }
    }

    /// The head with this id.
    public func head(id: Int64) throws -> HeadRecord {
        guard let head = try heads(where: "id = ?", id).first else {
            throw StoreError.notFound(path: path, what: "head \(id)")
        }
        return head
    }

    /// Heads trained on one extraction, oldest first.
    public func heads(extractionID: Int64) throws -> [HeadRecord] {
        try heads(where: "extraction_id = ?", extractionID)
    }

    /// Heads (trials) of one sweep, oldest first.
    public func heads(sweepID: Int64) throws -> [HeadRecord] {
        try heads(where: "sweep_id = ?", sweepID)
    }

    /// The head saved for a sweep trial, or nil if that trial has not finished yet.
    public func trial(sweepID: Int64, trialKey: String) throws -> HeadRecord? {
        let statement = try connection.prepare("SELECT \(FeatureStore.headColumns) FROM heads WHERE sweep_id = ? AND trial_key = ?")
        statement.bind(1, sweepID)
        statement.bind(2, trialKey)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return try headRecord(statement)
    }

    /// The keys of the finished trials of a sweep (without loading weights), for resuming.
    public func trialKeys(sweepID: Int64) throws -> Set<String> {
        let statement = try connection.prepare("SELECT trial_key FROM heads WHERE sweep_id = ?")
        statement.bind(1, sweepID)
        defer { statement.reset() }
        var keys = Set<String>()
        while try statement.step() { keys.insert(statement.text(0)) }
        return keys
    }

    /// Deletes a head.
    public func deleteHead(id: Int64) throws {
        try requireWritable("delete a head")
        try connection.transaction(write: true) {
            let delete = try connection.prepare("DELETE FROM heads WHERE id = ?")
            delete.bind(1, id)
            try delete.step("deleting head \(id)")
            delete.reset()
            if connection.changes == 0 { throw StoreError.notFound(path: path, what: "head \(id)") }
        }
    }

    private func heads(where condition: String, _ value: Int64) throws -> [HeadRecord] {
        let statement = try connection.prepare("SELECT \(FeatureStore.headColumns) FROM heads WHERE \(condition) ORDER BY id")
        statement.bind(1, value)
        defer { statement.reset() }
        var result: [HeadRecord] = []
        while try statement.step() { result.append(try headRecord(statement)) }
        return result
    }

    private func headRecord(_ s: Statement) throws -> HeadRecord {
        let id = s.int64(0)
        guard let classNames = try? JSONDecoder().decode([String].self, from: Data(s.text(3).utf8)) else {
            throw StoreError.corrupt(path: path, reason: "head \(id) has class_names that are not a JSON array of strings")
        }
        return HeadRecord(id: id, extractionID: s.int64(1), config: s.text(2), classNames: classNames,
                          weights: s.data(4), metrics: s.text(5), curves: s.text(6),
                          createdAt: Timestamp.date(s.text(7)), sweepID: s.optionalInt64(8), trialKey: s.optionalText(9))
    }

    // MARK: sweeps

    /// Finds the sweep with this name or creates it with `config`. An existing sweep keeps its
    /// stored config (returned in the record), so a resumed sweep can compare and refuse.
    public func sweep(name: String, config: String) throws -> SweepRecord {
        try requireWritable("record a sweep")
        if FeatureStore.canonicalJSON(config) == nil {
            throw StoreError.invalidArgument(path: path, reason: "sweep \"\(name)\": config is not valid JSON")
        }
        return try connection.transaction(write: true) {
            let insert = try connection.prepare("""
                INSERT INTO sweeps(name, config, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING
                """)
            insert.bind(1, name)
            insert.bind(2, config)
            insert.bind(3, Timestamp.string())
            try insert.step("creating sweep \(name)")
            insert.reset()
            guard let record = try sweeps(where: "name = ?", name).first else {
                throw StoreError.notFound(path: path, what: "sweep \(name)")
            }
            return record
        }
    }

    /// The sweep with this id, or nil.
    public func sweep(id: Int64) throws -> SweepRecord? {
        let statement = try connection.prepare("SELECT id, name, config, created_at FROM sweeps WHERE id = ?")
        statement.bind(1, id)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return SweepRecord(id: statement.int64(0), name: statement.text(1), config: statement.text(2),
                           createdAt: Timestamp.date(statement.text(3)))
    }

    /// All sweeps, by id.
    public func sweeps() throws -> [SweepRecord] { try sweeps(where: "?1 IS NOT NULL", "all") }

    private func sweeps(where condition: String, _ value: String) throws -> [SweepRecord] {
        let statement = try connection.prepare("SELECT id, name, config, created_at FROM sweeps WHERE \(condition) ORDER BY id")
        statement.bind(1, value)
        defer { statement.reset() }
        var result: [SweepRecord] = []
        while try statement.step() {
            result.append(SweepRecord(id: statement.int64(0), name: statement.text(1), config: statement.text(2),
                                      createdAt: Timestamp.date(statement.text(3))))
        }
        return result
    }
}
