import CSQLite
import Foundation
import GateScopeEngine

/// What one input run of a merge is (read from its database).
struct SourceRun {
    var file: String
    var runID: Int64
    var status: String
    var modelSHA: String
    var inputSHA: String
    var params: String
    var shardIndex: Int?
    var shardCount: Int?
    var inputSequences: Int64
    var sequences: Int64
    var steps: Int64
    var rows: Int64

    static func all(in db: Database, file: String) throws -> [SourceRun] {
        let rows = try db.query("""
            SELECT run_id, status, model_sha256, input_sha256, params, shard_index, shard_count,
                   coalesce(input_sequences, sequence_count, 0), recorded_sequences, recorded_steps, row_count
            FROM runs ORDER BY run_id
            """)
        var out: [SourceRun] = []
        while let r = try rows.nextRow() {
            out.append(SourceRun(file: file, runID: r[0].int64Value ?? 0, status: r[1].stringValue ?? "",
                                 modelSHA: r[2].stringValue ?? "", inputSHA: r[3].stringValue ?? "", params: r[4].stringValue ?? "{}",
                                 shardIndex: r[5].int64Value.map(Int.init), shardCount: r[6].int64Value.map(Int.init),
                                 inputSequences: r[7].int64Value ?? 0, sequences: r[8].int64Value ?? 0,
                                 steps: r[9].int64Value ?? 0, rows: r[10].int64Value ?? 0))
        }
        return out
    }

    /// The recording options without the shard: what every shard of one recording shares.
    var paramsWithoutShard: String {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(params.utf8))) as? [String: Any] else { return params }
        object["shard"] = nil
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(params.utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Shards of one recording: checks that they fit together and puts them in shard order.
enum ShardSet {
    /// The shards of `runs`, ordered by K; refuses (one line naming the file) shards of different
    /// recordings, a missing or duplicated shard, or one that is not complete.
    static func check(_ runs: [SourceRun]) throws -> [SourceRun] {
        guard let first = runs.first, let n = first.shardCount else { return runs }
        for r in runs {
            func differ(_ what: String) -> StoreError {
                StoreError("'\(r.file)' run \(r.runID) is a shard of another recording than '\(first.file)' run \(first.runID): \(what) differ")
            }
            if r.shardCount != n { throw differ("the shard counts (\(r.shardCount.map(String.init) ?? "none") vs \(n))") }
            if r.modelSHA != first.modelSHA { throw differ("the model files") }
            if r.inputSHA != first.inputSHA { throw differ("the input files") }
            if r.paramsWithoutShard != first.paramsWithoutShard { throw differ("the record options") }
            guard r.status == "complete" else {
                throw StoreError("'\(r.file)' run \(r.runID) (shard \(r.shardIndex ?? -1)/\(n)) is \(r.status), not complete; finish it with record --resume \(r.runID)")
            }
        }
        var byIndex: [Int: SourceRun] = [:]
        for r in runs {
            let k = r.shardIndex ?? -1
            if let other = byIndex[k] {
                throw StoreError("shard \(k)/\(n) is given twice: '\(other.file)' run \(other.runID) and '\(r.file)' run \(r.runID)")
            }
            byIndex[k] = r
        }
        if let missing = (0..<n).first(where: { byIndex[$0] == nil }) {
            throw StoreError("shard \(missing)/\(n) is missing (given: \(byIndex.keys.sorted().map { "\($0)" }.joined(separator: ", ")))")
        }
        return (0..<n).map { byIndex[$0]! }
    }
}

/// `gatescope merge OUT SHARD...`: folds the shards of one recording into one run of OUT, and
/// copies runs that are not shards as runs of their own. Rows are copied with INSERT ... SELECT
/// over ATTACH; the per-unit summaries are added exactly (histograms add, exact sums add), so the
/// merged run equals an unsharded recording. The work is done in a copy of OUT that replaces it
/// only when complete: after a crash OUT is unchanged, and a rerun starts over.
public enum Merge {
    /// One run written to OUT.
    public struct Written: Sendable, Equatable {
        public var runID: Int64
        /// Source files and their run ids (several for a merged shard set).
        public var sources: [String]
        public var rows: Int64
    }

    /// What a merge wrote.
    public struct Result: Sendable, Equatable {
        public var written: [Written]
        public var rows: Int64
        public var seconds: Double
    }

    /// Merges `inputs` into `out` (created if missing).
    public static func merge(into out: String, from inputs: [String]) throws -> Result {
        let started = Date()
        guard !inputs.isEmpty else { throw StoreError("name at least one database to merge") }
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        var runs: [SourceRun] = []
        for file in inputs {
            guard URL(fileURLWithPath: file).standardizedFileURL != outURL else {
                throw StoreError("'\(file)' is both the output and an input")
            }
            let db = try ReadAccess.open(file)
            let found = try SourceRun.all(in: db, file: file)
            if found.isEmpty { throw StoreError("'\(file)' has no runs") }
            runs += found
        }
        for r in runs where r.status != "complete" && r.shardCount == nil {
            throw StoreError("'\(r.file)' run \(r.runID) is \(r.status), not complete; finish it with record --resume \(r.runID)")
        }
        let shards = try ShardSet.check(runs.filter { $0.shardCount != nil })
        let singles = runs.filter { $0.shardCount == nil }
        if shards.count > 0 {
            // Every shard must have recorded the same layers.
            let layers = try shards.map { try layerRows(file: $0.file, run: $0.runID) }
            if let k = layers.firstIndex(where: { $0 != layers[0] }) {
                throw StoreError("'\(shards[k].file)' run \(shards[k].runID) recorded other layers than '\(shards[0].file)'")
            }
        }

        // Work in a private copy of OUT; it replaces OUT only when everything is written.
        let tmp = out + ".merge-\(getpid())"
        let fm = FileManager.default
        // A merge that was killed left its copy behind: remove those whose process is gone.
        let folder = outURL.deletingLastPathComponent().path, prefix = outURL.lastPathComponent + ".merge-"
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            let digits = rest.prefix { $0.isNumber }
            guard let pid = Int32(digits), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? fm.removeItem(atPath: folder + "/" + name)
        }
        for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: tmp + suffix) }
        if fm.fileExists(atPath: out) {
            do {
                let existing = try Database(path: out, mode: .readWrite)
                try Schema.migrate(existing)
                _ = try existing.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
            }
            do { try fm.copyItem(atPath: out, toPath: tmp) } catch {
                throw DatabaseError(code: SQLITE_CANTOPEN, message: "cannot copy '\(out)' to work on: \(error.localizedDescription)")
            }
        }
        var written: [Written] = []
        var total: Int64 = 0
        do {
            let db = try Database(path: tmp, mode: .readWriteCreate, pageSize: RunWriter.pageSize)
            try Schema.migrate(db)
            try RunWriter.configureWriter(db)
            if !shards.isEmpty {
                let id = try nextRunID(db)
                var summaries: [UnitKey: [Gate: GateSummary]] = [:]
                for (k, shard) in shards.enumerated() {
                    try copy(db, from: shard, as: id, header: k == 0 ? .merged(shards) : nil)
                    GateSummary.merge(try loadSummaries(file: shard.file, run: shard.runID), into: &summaries)
                }
                try db.transaction {
                    try GateSummary.write(summaries, to: db, runID: id)
                    try mergeSequenceStatistics(shards, into: db, runID: id)
                }
                let rows = shards.reduce(Int64(0)) { $0 + $1.rows }
                written.append(Written(runID: id, sources: shards.map { "\($0.file) run \($0.runID)" }, rows: rows))
                total += rows
            }
            for single in singles {
                let id = try nextRunID(db)
                try copy(db, from: single, as: id, header: .copied)
                try db.transaction { try GateSummary.write(try loadSummaries(file: single.file, run: single.runID), to: db, runID: id) }
                written.append(Written(runID: id, sources: ["\(single.file) run \(single.runID)"], rows: single.rows))
                total += single.rows
            }
            _ = try db.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: tmp + suffix) }
            throw error
        }
        // Atomic replacement: readers see the old OUT or the new one.
        for suffix in ["-wal", "-shm"] { try? fm.removeItem(atPath: out + suffix) }
        guard rename(tmp, out) == 0 else {
            let message = String(cString: strerror(errno))
            try? fm.removeItem(atPath: tmp)
            throw DatabaseError(code: SQLITE_CANTOPEN, message: "cannot move the merged database to '\(out)': \(message)")
        }
        for suffix in ["-wal", "-shm"] { try? fm.removeItem(atPath: tmp + suffix) }
        return Result(written: written, rows: total, seconds: Date().timeIntervalSince(started))
    }

    enum Header {
        /// The run row of a merged shard set: the whole input's counts, no shard.
        case merged([SourceRun])
        /// A run copied as it is.
        case copied
    }

    static func nextRunID(_ db: Database) throws -> Int64 {
        (try db.scalar("SELECT coalesce(max(run_id), 0) + 1 FROM runs")?.int64Value) ?? 1
    }

    static func layerRows(file: String, run: Int64) throws -> [[SQLiteValue]] {
        let db = try ReadAccess.open(file)
        return try db.query("SELECT layer_id, name, direction, units, input_dim, activation, recurrent_activation, time_input, aligned, cell FROM layers WHERE run_id = ? ORDER BY layer_id", [run]).allRows().map(\.values)
    }

    static func loadSummaries(file: String, run: Int64) throws -> [UnitKey: [Gate: GateSummary]] {
        try GateSummary.load(from: try ReadAccess.open(file), runID: run)
    }

    static let runColumns = "name, model_path, model_sha256, model_format, keras_version, producer, input_path, input_sha256, status, error, created_at, finished_at, tool_version, params, sequence_count, recorded_sequences, recorded_steps, row_count, shard_index, shard_count, input_sequences"

    /// Copies one source run's rows as run `id` of `db` (one transaction), and its run and layer
    /// rows when `header` says so.
    static func copy(_ db: Database, from source: SourceRun, as id: Int64, header: Header?) throws {
        try db.run("ATTACH DATABASE ? AS src", source.file)
        defer { _ = try? db.execute("DETACH DATABASE src") }
        try db.transaction {
            switch header {
            case let .merged(all)?:
                let seqs = all.reduce(Int64(0)) { $0 + $1.sequences }, steps = all.reduce(Int64(0)) { $0 + $1.steps }
                let rows = all.reduce(Int64(0)) { $0 + $1.rows }
                try db.run("""
                    INSERT INTO runs (run_id, \(runColumns))
                    SELECT ?, name, model_path, model_sha256, model_format, keras_version, producer, input_path, input_sha256,
                           'complete', NULL, created_at, ?, tool_version, ?, input_sequences, ?, ?, ?, NULL, NULL, input_sequences
                    FROM src.runs WHERE run_id = ?
                    """, id, utcNow(), source.paramsWithoutShard, seqs, steps, rows, source.runID)
                try copyLayers(db, source: source.runID, as: id)
            case .copied?:
                try db.run("INSERT INTO runs (run_id, \(runColumns)) SELECT ?, \(runColumns) FROM src.runs WHERE run_id = ?", id, source.runID)
                try copyLayers(db, source: source.runID, as: id)
            case nil:
                break
            }
            if case .copied? = header {
                for (table, columns) in SequenceAccumulators.tables {
                    try db.run("INSERT INTO \(table) (run_id, \(columns)) SELECT ?, \(columns) FROM src.\(table) WHERE run_id = ?", id, source.runID)
                }
            }
            try db.run("INSERT INTO sequences SELECT ?, seq_id, length, source_id FROM src.sequences WHERE run_id = ? ORDER BY seq_id", id, source.runID)
            try db.run("INSERT INTO tokens SELECT ?, seq_id, step, token_id, token FROM src.tokens WHERE run_id = ? ORDER BY seq_id, step", id, source.runID)
            for cell in CellKind.allCases {
                // Table and columns from the cell descriptor, never from user text.
                let columns = cell.planes.joined(separator: ", ")
                try db.run("""
                    INSERT INTO \(cell.table) (run_id, seq_id, layer_id, step, unit, \(columns))
                    SELECT ?, seq_id, layer_id, step, unit, \(columns) FROM src.\(cell.table) WHERE run_id = ?
                    ORDER BY seq_id, layer_id, step, unit
                    """, id, source.runID)
            }
        }
    }

    static func copyLayers(_ db: Database, source: Int64, as id: Int64) throws {
        try db.run("""
            INSERT INTO layers (run_id, layer_id, name, direction, units, input_dim, activation, recurrent_activation, time_input, aligned, cell,
                                pairs_stored, spans_stored)
            SELECT ?, layer_id, name, direction, units, input_dim, activation, recurrent_activation, time_input, aligned, cell,
                   pairs_stored, spans_stored
            FROM src.layers WHERE run_id = ?
            """, id, source)
    }
}

extension Merge {
    /// Adds up the shards' pair moments and spans, layer by layer, as run `runID` of `db`; a
    /// layer keeps them only if every shard does (otherwise queries scan its rows).
    static func mergeSequenceStatistics(_ shards: [SourceRun], into db: Database, runID: Int64) throws {
        let sources = try shards.map { try ReadAccess.open($0.file) }
        // The shards recorded the same layers (checked before): layer k of each is one layer.
        let shardLayers = try zip(sources, shards).map { try ReadAccess.layers($0, run: $1.runID) }
        let mark = try db.prepare("UPDATE layers SET pairs_stored = ?, spans_stored = ? WHERE run_id = ? AND layer_id = ?")
        for (k, l) in shardLayers[0].enumerated() {
            // Stored only if stored in every shard; NULL (recorded before schema 6) if any is NULL.
            func combined(_ flag: KeyPath<LayerInfo, Bool?>) -> Bool? {
                let flags = shardLayers.map { $0[k][keyPath: flag] }
                return flags.contains(where: { $0 == nil }) ? nil : flags.allSatisfy { $0 == true }
            }
            let pairs = combined(\.pairsStored), spans = combined(\.spansStored)
            if pairs == true {
                var total: LayerPairMoments? = nil
                for (src, shard) in zip(sources, shards) {
                    let part = try LayerPairMoments.load(from: src, runID: shard.runID, layerID: Int(l.layerID), units: l.units)
                    if total == nil { total = part } else { total!.merge(part) }
                }
                try total!.write(to: db, runID: runID, layerID: Int(l.layerID))
            }
            if spans == true {
                var total: [Span]? = nil
                for (src, shard) in zip(sources, shards) {
                    let part = try SpanAccumulator.load(from: src, runID: shard.runID, layerID: Int(l.layerID), units: l.units)
                    if total == nil { total = part } else { for k in part.indices { total![k].merge(part[k]) } }
                }
                try SpanAccumulator.write(total!, units: l.units, to: db, runID: runID, layerID: Int(l.layerID))
            }
            try mark.bind([pairs.map { $0 ? 1 : 0 }, spans.map { $0 ? 1 : 0 }, runID, l.layerID] as [SQLiteBindable?])
            try mark.run()
        }
    }
}

extension GateSummary {
    /// Writes summaries (layer, unit) -> gate -> summary as run `runID`'s unit_summaries rows.
    static func write(_ summaries: [UnitKey: [Gate: GateSummary]], to db: Database, runID: Int64) throws {
        let insert = try db.prepare("""
            INSERT INTO unit_summaries (run_id, layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq, sums)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for key in summaries.keys.sorted() {
            for (gate, s) in summaries[key]!.sorted(by: { $0.key.order < $1.key.order }) {
                let empty = s.n == 0
                try insert.bind([runID, key.layerID, key.unit, gate.rawValue, s.n,
                                 empty ? nil : s.mean, empty ? nil : s.m2, empty ? nil : s.min, empty ? nil : s.max,
                                 s.encodedHistogram(), s.encodedEdgeEqual(), s.storedMoments == nil ? s.sums.encoded() : nil] as [SQLiteBindable?])
                try insert.run()
            }
        }
    }
}
