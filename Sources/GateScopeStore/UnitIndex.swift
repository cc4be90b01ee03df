import CSQLite
import Foundation
import GateScopeEngine

/// `gatescope index DB`: the optional access paths for questions about single units and for exact
/// statistics at any threshold (schema/007_unit_index.sql). Recording never builds them.
///
/// - an index on (run_id, layer_id, unit) of each cell table, plus ANALYZE, so that per-unit reads
///   (`export --units`, `plot unit`, `top-tokens`, users' `WHERE unit = ?`) seek instead of scan;
/// - per unit and gate, the run's values sorted in chunks (`unit_values`), which `stats` reads
///   for thresholds off the histogram grid.
public enum UnitIndex {
    /// Values per `unit_values` chunk.
    // 960 Float32s (3,840 bytes) keep a row inside one 16 KiB page of a WITHOUT ROWID table, whose
    // rows spill to an overflow page above about 4,080 bytes.
    public static let chunkSize = 960

    /// What `build` did.
    public struct Result: Sendable, Equatable {
        /// Runs whose values were sorted now.
        public var sortedRuns: [Int64]
        /// Indexes created now.
        public var createdIndexes: [String]
        public var bytesBefore: Int64
        public var bytesAfter: Int64
        public var seconds: Double
    }

    /// The unit index of a cell table.
    static func indexName(_ cell: CellKind) -> String { cell.table + "_by_unit" }

    /// Whether the database has the unit index of `cell`.
    public static func hasIndex(_ db: Database, cell: CellKind) throws -> Bool {
        try db.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", indexName(cell))?.int64Value == 1
    }

    /// Builds what is missing: the unit indexes, and sorted values for every complete run (or
    /// only `runs`). `progress(run)` is called before each run is sorted.
    public static func build(path: String, runs only: [Int64]? = nil, progress: (Int64) -> Void = { _ in }) throws -> Result {
        let started = Date()
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatabaseError(code: SQLITE_CANTOPEN, message: "no database '\(path)'")
        }
        func size() -> Int64 {
            ["", "-wal"].reduce(Int64(0)) { total, suffix in
                total + (((try? FileManager.default.attributesOfItem(atPath: path + suffix))?[.size] as? NSNumber)?.int64Value ?? 0)
            }
        }
        let before = size()
        let db = try Database(path: path, mode: .readWrite)
        try Schema.checkReadable(db)
        var created: [String] = []
        for cell in CellKind.allCases where try !hasIndex(db, cell: cell) {
            // Names from the cell descriptor, never from user text.
            try db.execute("CREATE INDEX \(indexName(cell)) ON \(cell.table) (run_id, layer_id, unit)")
            created.append(indexName(cell))
        }
        let complete = try db.query("SELECT run_id FROM runs WHERE status = 'complete' AND values_sorted_at IS NULL ORDER BY run_id")
            .allRows().compactMap { $0[0].int64Value }
        if let only {
            for run in only where !(try db.scalar("SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?)", run)?.int64Value == 1) {
                throw StoreError("'\(path)' has no run \(run)")
            }
        }
        let todo = complete.filter { only?.contains($0) ?? true }
        for run in todo {
            progress(run)
            try db.transaction { try sortValues(db, run: run) }
        }
        try db.execute("ANALYZE")
        _ = try db.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
        return Result(sortedRuns: todo, createdIndexes: created, bytesBefore: before, bytesAfter: size(),
                      seconds: Date().timeIntervalSince(started))
    }

    /// Writes the sorted chunks of every gridded gate of every unit of `run`.
    static func sortValues(_ db: Database, run: Int64) throws {
        let layers = try ReadAccess.layers(db, run: run)
        let insert = try db.prepare("INSERT INTO unit_values (run_id, layer_id, unit, gate, chunk, vals) VALUES (?, ?, ?, ?, ?, ?)")
        try db.run("DELETE FROM unit_values WHERE run_id = ?", run)
        // One layer at a time bounds the memory to one layer's values.
        for layer in layers {
            let gates = Gate.of(layer.cell).enumerated().filter { $0.element.grid != nil }
            var values = [[[Float]]](repeating: [[Float]](repeating: [], count: gates.count), count: layer.units)
            let columns = gates.map(\.element.rawValue).joined(separator: ", ")
            // NOT INDEXED: one pass over the run's rows in key order beats a seek per row.
            let st = try db.prepare("SELECT unit, \(columns) FROM \(layer.cell.table) NOT INDEXED WHERE run_id = ? AND layer_id = ?")
            try st.bind([run, layer.layerID])
            while try st.step() {
                let unit = st.int(at: 0)
                guard unit >= 0, unit < layer.units else {
                    throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(run) layer \(layer.label) has a row for unit \(unit) of \(layer.units)")
                }
                for g in gates.indices { values[unit][g].append(Float(st.double(at: 1 + g))) }
            }
            for unit in 0..<layer.units {
                for (g, gate) in gates.enumerated() {
                    values[unit][g].sort()
                    let sorted = values[unit][g]
                    var chunk = 0
                    while chunk * chunkSize < sorted.count {
                        let part = sorted[(chunk * chunkSize)..<Swift.min(sorted.count, (chunk + 1) * chunkSize)]
                        let blob = part.withUnsafeBufferPointer { p in Data(buffer: p) }
                        try insert.bind([run, layer.layerID, unit, gate.element.rawValue, chunk, blob] as [SQLiteBindable?])
                        try insert.run()
                        chunk += 1
                    }
                    values[unit][g] = []
                }
            }
        }
        try db.run("UPDATE runs SET values_sorted_at = ? WHERE run_id = ?", utcNow(), run)
    }
}

/// Counts at any threshold from a run's histograms and sorted values (`unit_values`): the values
/// below t are those of the histogram slots below t's slot, plus a binary search among the
/// values of t's own slot, which lie in one or two chunks.
struct SortedValues {
    let db: Database
    let run: Int64
    let read: Statement
    /// The chunks read so far for the current (layer, unit, gate).
    private var cache: [Int: [Float]] = [:]
    private var key: (Int64, Int, String) = (-1, -1, "")

    /// nil when the run's values were not sorted (`gatescope index` not run since it completed).
    init?(db: Database, run: Int64) throws {
        guard try db.scalar("SELECT values_sorted_at IS NOT NULL FROM runs WHERE run_id = ?", run)?.int64Value == 1 else { return nil }
        self.db = db
        self.run = run
        read = try db.prepare("SELECT vals FROM unit_values WHERE run_id = ? AND layer_id = ? AND unit = ? AND gate = ? AND chunk = ?")
    }

    /// The value at sorted position `p`.
    mutating func value(at p: Int64, layer: Int64, unit: Int, gate: Gate) throws -> Float {
        if key != (layer, unit, gate.rawValue) {
            cache = [:]
            key = (layer, unit, gate.rawValue)
        }
        let c = Int(p / Int64(UnitIndex.chunkSize)), offset = Int(p % Int64(UnitIndex.chunkSize))
        if cache[c] == nil {
            try read.reset()
            try read.bind([run, layer, unit, gate.rawValue, c])
            guard try read.step(), let blob = read.data(at: 0), blob.count % 4 == 0 else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(run): unit_values chunk \(c) of layer \(layer) unit \(unit) gate \(gate) is missing or malformed")
            }
            cache[c] = blob.withUnsafeBytes { raw in (0..<(blob.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        }
        guard offset < cache[c]!.count else {
            throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(run): unit_values chunk \(c) of layer \(layer) unit \(unit) gate \(gate) is short")
        }
        return cache[c]![offset]
    }

    /// Exact number of values `< t` (or `<= t` with `inclusive`) of one unit's gate.
    mutating func count(_ s: GateSummary, below t: Double, inclusive: Bool, layer: Int64, unit: Int) throws -> Int64 {
        guard let grid = s.gate.grid, let hist = s.histogram else { return 0 }
        let (slot, _) = HistogramGrid.locate(t, lo: grid.lowerBound, bins: s.binCount)
        let start = s.count(inSlotsBelow: slot)
        // Binary search in positions [start, start + hist[slot]) for the first value not below t.
        var lo = start, hi = start + hist[slot]
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let v = Double(try value(at: mid, layer: layer, unit: unit, gate: s.gate))
            if inclusive ? v <= t : v < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
