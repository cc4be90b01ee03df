import CSQLite
import Foundation
import GateScopeEngine

/// Saturation statistics per (run, layer half, unit, gate): n, left, right, mean, std, min, max.
///
/// Saturation (Karpathy, Johnson & Fei-Fei 2015), by each gate's range in the cell descriptor:
/// for the unit-range gates (LSTM i, f, o; GRU z, r) `left` is the fraction of recorded steps
/// with value < low and `right` the fraction > high; for the signed ones (LSTM g, h; GRU n, h;
/// SimpleRNN h) left < -high and right > high; c has no saturation (NULL). `std` is the
/// population standard deviation. Each layer gets rows for its own cell's gates.
///
/// A complete run answers from `unit_summaries` (no scan) when every threshold lies on the 1/1000
/// grid of the histograms; thresholds off the grid are counted by one scan of the run's `gates`
/// rows, and runs that are not complete (or lack summaries) are computed entirely by that scan.
/// The counts are exact either way.
public enum Stats {
    /// How rows are ordered before `top` is applied.
    public enum Sort: String, CaseIterable, Sendable {
        /// Most right-saturated first (NULL last).
        case right
        /// Most left-saturated first (NULL last).
        case left
        /// Layer, unit, gate (the default order).
        case unit
        /// Highest mean first.
        case mean
    }

    /// What to compute.
    public struct Options: Sendable {
        /// Run id; nil = the latest complete run.
        public var run: Int64?
        /// Layer filters; empty = every recorded layer half.
        public var layers: [LayerFilter] = []
        /// Gates to report (each layer reports those its cell has); empty = every gate of each layer.
        public var gates: [Gate] = []
        /// i, f, o: left = fraction < low.
        public var low: Double = 0.1
        /// i, f, o: right = fraction > high; g, h: left < -high, right > high.
        public var high: Double = 0.9
        /// Ordering; nil = layer, unit, gate.
        public var sort: Sort?
        /// Keep only the first `top` rows after sorting.
        public var top: Int?
        /// Ignore the summaries and compute everything from one scan of `gates` (for checks).
        public var fullScan = false
        /// Sequence ranges a scan is split into, scanned in parallel; nil = one per core for runs of
        /// a million rows or more, else one.
        public var scanPartitions: Int?

        /// Default options: latest complete run, every layer and gate, thresholds 0.1 / 0.9.
        public init() {}
    }

    /// One result row.
    public struct Row: Equatable, Sendable {
        public var runID: Int64
        public var layer: LayerInfo
        public var unit: Int
        public var gate: Gate
        /// Number of recorded steps.
        public var n: Int64
        /// Exact counts behind `left` and `right` (nil for c, or when n = 0).
        public var leftCount: Int64?
        public var rightCount: Int64?
        public var mean: Double?
        public var std: Double?
        public var min: Double?
        public var max: Double?

        /// `leftCount / n`.
        public var left: Double? { leftCount.map { Double($0) / Double(n) } }
        /// `rightCount / n`.
        public var right: Double? { rightCount.map { Double($0) / Double(n) } }

        /// The row as printed, in `Stats.columns` order.
        public var values: [SQLiteValue] {
            func real(_ v: Double?) -> SQLiteValue { v.map(SQLiteValue.real) ?? .null }
            return [.integer(runID), .text(layer.name), .text(layer.direction), .integer(Int64(unit)),
                    .text(gate.rawValue), .integer(n), real(left), real(right), real(mean), real(std),
                    real(min), real(max)]
        }
    }

    /// Where the numbers came from.
    public enum Source: String, Sendable {
        /// Everything from `unit_summaries`.
        case summaries
        /// Moments from the summaries, counts for off-grid thresholds from a scan.
        case summariesAndScan = "summaries+scan"
        /// Moments from the summaries, counts for off-grid thresholds from the sorted values
        /// that `gatescope index` wrote.
        case summariesAndSortedValues = "summaries+sorted-values"
        /// Everything from a scan of `gates`.
        case scan
    }

    /// A computed result.
    public struct Result: Sendable {
        public var run: RunInfo
        public var rows: [Row]
        public var source: Source
    }

    /// Column names of `Row.values`.
    public static let columns = ["run_id", "layer", "direction", "unit", "gate", "n", "left", "right", "mean", "std", "min", "max"]

    /// The (left, right) thresholds of `gate`, nil for c.
    public static func thresholds(for gate: Gate, low: Double, high: Double) -> (left: Double, right: Double)? {
        gate.range.thresholds(low: low, high: high)
    }

    /// The gates of `layer` that `requested` selects (all of the layer's for an empty list), in plane order.
    public static func gates(of layer: LayerInfo, requested: [Gate]) -> [Gate] {
        requested.isEmpty ? layer.gates : layer.gates.filter(requested.contains)
    }

    /// Refuses a gate list that no selected layer has (`--gates z` on an LSTM-only run).
    static func checkGates(_ requested: [Gate], layers: [LayerInfo]) throws {
        guard !requested.isEmpty, !layers.isEmpty else { return }
        let present = Set(layers.flatMap(\.gates))
        if !requested.contains(where: present.contains) {
            let cells = CellKind.allCases.filter { c in layers.contains { $0.cell == c } }
            let have = cells.map { "\($0.className): \($0.planes.joined(separator: ", "))" }.joined(separator: "; ")
            throw StoreError("no selected layer has gate \(requested.map(\.rawValue).joined(separator: ", ")) (\(have))")
        }
    }

    /// Computes the statistics on `db` (opened read-only by the caller).
    public static func compute(_ db: Database, options: Options) throws -> Result {
        guard options.low.isFinite, options.high.isFinite else {
            throw StoreError("thresholds must be finite numbers")
        }
        let run = try ReadAccess.run(db, id: options.run)
        let layers = try ReadAccess.layers(db, run: run.runID, matching: options.layers)
        try checkGates(options.gates, layers: layers)
        func gatesOf(_ layer: LayerInfo) -> [Gate] { gates(of: layer, requested: options.gates) }

        var summaries: [UnitKey: [Gate: GateSummary]] = [:]
        var useSummaries = false
        if !options.fullScan, run.status == "complete", try db.tableExists("unit_summaries") {
            summaries = try GateSummary.load(from: db, runID: run.runID)
            useSummaries = layers.allSatisfy { layer in
                (0..<layer.units).allSatisfy { unit in
                    let perGate = summaries[UnitKey(layerID: Int(layer.layerID), unit: unit)]
                    return gatesOf(layer).allSatisfy { perGate?[$0] != nil }
                }
            }
        }

        var rows: [Row] = []
        var source = Source.summaries
        if useSummaries {
            var plan = try summaryRows(run: run.runID, file: db.path, layers: layers, summaries: summaries, options: options)
            if !plan.offGrid.isEmpty, var sorted = try SortedValues(db: db, run: run.runID) {
                source = .summariesAndSortedValues
                try plan.fill(from: &sorted, summaries: summaries, low: options.low, high: options.high)
            } else if !plan.offGrid.isEmpty {
                try run.requireRows(for: "stats with thresholds off the 1/1000 grid")
                source = .summariesAndScan
                let scanned = try scan(db, run: run.runID, layers: layers, gates: plan.offGrid,
                                       low: options.low, high: options.high, moments: false,
                                       partitions: options.scanPartitions)
                plan.fill(from: scanned)
            }
            rows = plan.rows
        } else {
            try run.requireRows(for: options.fullScan ? "stats --full-scan" : "stats without complete summaries")
            source = .scan
            let scanned = try scan(db, run: run.runID, layers: layers, gates: Set(layers.flatMap(gatesOf)),
                                   low: options.low, high: options.high, moments: true,
                                   partitions: options.scanPartitions)
            for layer in layers {
                for unit in 0..<layer.units {
                    for gate in gatesOf(layer) {
                        let a = scanned[ScanKey(layerID: layer.layerID, unit: unit, gate: gate)] ?? Accumulator()
                        let hasThresholds = gate.grid != nil && a.n > 0
                        rows.append(Row(runID: run.runID, layer: layer, unit: unit, gate: gate, n: a.n,
                                        leftCount: hasThresholds ? a.below : nil,
                                        rightCount: hasThresholds ? a.above : nil,
                                        mean: a.n > 0 ? a.mean : nil,
                                        std: a.n > 0 ? (a.m2 / Double(a.n)).squareRoot() : nil,
                                        min: a.n > 0 ? a.min : nil, max: a.n > 0 ? a.max : nil))
                    }
                }
            }
        }
        rows = sorted(rows, by: options.sort)
        if let top = options.top, top < rows.count { rows = Array(rows.prefix(max(0, top))) }
        return Result(run: run, rows: rows, source: source)
    }

    /// The statistics of a recording split into shards (one database each, `record --shard K/N`),
    /// without merging them: the shards' summaries are added exactly (histograms and exact sums),
    /// so the result equals `compute` on the merged database. Off-grid thresholds scan each shard.
    public static func compute(shards dbs: [Database], options: Options) throws -> Result {
        guard options.low.isFinite, options.high.isFinite else {
            throw StoreError("thresholds must be finite numbers")
        }
        var sources: [SourceRun] = []
        for db in dbs {
            let run = try ReadAccess.run(db, id: options.run)
            guard let source = try SourceRun.all(in: db, file: db.path).first(where: { $0.runID == run.runID }), source.shardCount != nil else {
                throw StoreError("'\(db.path)' run \(run.runID) is not a shard; stats over several databases reads the shards of one recording (record --shard K/N)")
            }
            sources.append(source)
        }
        let ordered = try ShardSet.check(sources)
        let byFile = Dictionary(uniqueKeysWithValues: zip(dbs.map(\.path), dbs))
        let first = byFile[ordered[0].file]!
        var run = try ReadAccess.run(first, id: ordered[0].runID)
        run.sequences = ordered.reduce(0) { $0 + $1.sequences }
        run.steps = ordered.reduce(0) { $0 + $1.steps }
        run.rows = ordered.reduce(0) { $0 + $1.rows }
        let layers = try ReadAccess.layers(first, run: run.runID, matching: options.layers)
        try checkGates(options.gates, layers: layers)
        var summaries: [UnitKey: [Gate: GateSummary]] = [:]
        for shard in ordered {
            GateSummary.merge(try GateSummary.load(from: byFile[shard.file]!, runID: shard.runID), into: &summaries)
        }
        var plan = try summaryRows(run: run.runID, file: first.path, layers: layers, summaries: summaries, options: options)
        var source = Source.summaries
        if !plan.offGrid.isEmpty {
            source = .summariesAndScan
            var counted: [ScanKey: Accumulator] = [:]
            for shard in ordered {
                let part = try scan(byFile[shard.file]!, run: shard.runID, layers: layers, gates: plan.offGrid,
                                    low: options.low, high: options.high, moments: false, partitions: options.scanPartitions)
                for (k, a) in part { counted[k, default: Accumulator()].merge(a) }
            }
            plan.fill(from: counted)
        }
        var rows = sorted(plan.rows, by: options.sort)
        if let top = options.top, top < rows.count { rows = Array(rows.prefix(max(0, top))) }
        return Result(run: run, rows: rows, source: source)
    }

    /// Rows answered from per-unit summaries, and the gates whose left or right counts need a
    /// scan because a threshold is off the 1/1000 grid.
    struct SummaryRows {
        var rows: [Row]
        var scanLeft: Set<Gate>
        var scanRight: Set<Gate>
        var offGrid: Set<Gate> { scanLeft.union(scanRight) }

        /// Takes the off-grid counts from the run's sorted values.
        mutating func fill(from sorted: inout SortedValues, summaries: [UnitKey: [Gate: GateSummary]], low: Double, high: Double) throws {
            for k in rows.indices where rows[k].n > 0 {
                let row = rows[k]
                guard let s = summaries[UnitKey(layerID: Int(row.layer.layerID), unit: row.unit)]?[row.gate],
                      let (lt, rt) = Stats.thresholds(for: row.gate, low: low, high: high) else { continue }
                if scanLeft.contains(row.gate) {
                    rows[k].leftCount = try sorted.count(s, below: lt, inclusive: false, layer: row.layer.layerID, unit: row.unit)
                }
                if scanRight.contains(row.gate) {
                    rows[k].rightCount = s.n - (try sorted.count(s, below: rt, inclusive: true, layer: row.layer.layerID, unit: row.unit))
                }
            }
        }

        /// Takes the off-grid counts from a scan of the same rows.
        mutating func fill(from scanned: [ScanKey: Accumulator]) {
            for k in rows.indices where rows[k].n > 0 {
                let counted = scanned[ScanKey(layerID: rows[k].layer.layerID, unit: rows[k].unit, gate: rows[k].gate)]
                if scanLeft.contains(rows[k].gate) { rows[k].leftCount = counted?.below ?? 0 }
                if scanRight.contains(rows[k].gate) { rows[k].rightCount = counted?.above ?? 0 }
            }
        }
    }

    /// One row per (layer, unit, gate) from `summaries`; a missing summary is damaged data.
    static func summaryRows(run: Int64, file: String, layers: [LayerInfo], summaries: [UnitKey: [Gate: GateSummary]],
                            options: Options) throws -> SummaryRows {
        var plan = SummaryRows(rows: [], scanLeft: [], scanRight: [])
        for layer in layers {
            for unit in 0..<layer.units {
                for gate in gates(of: layer, requested: options.gates) {
                    guard let s = summaries[UnitKey(layerID: Int(layer.layerID), unit: unit)]?[gate] else {
                        throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(run) of '\(file)' has no summary of \(layer.label) unit \(unit) gate \(gate)")
                    }
                    var row = Row(runID: run, layer: layer, unit: unit, gate: gate, n: s.n, leftCount: nil, rightCount: nil,
                                  mean: s.n > 0 ? s.mean : nil, std: s.n > 0 ? s.std : nil,
                                  min: s.n > 0 ? s.min : nil, max: s.n > 0 ? s.max : nil)
                    if let (lt, rt) = thresholds(for: gate, low: options.low, high: options.high), s.n > 0 {
                        row.leftCount = s.countBelow(lt)
                        row.rightCount = s.countAbove(rt)
                        if row.leftCount == nil { plan.scanLeft.insert(gate) }
                        if row.rightCount == nil { plan.scanRight.insert(gate) }
                    }
                    plan.rows.append(row)
                }
            }
        }
        return plan
    }

    /// Writes a result to `writer`.
    public static func write(_ result: Result, to writer: RowWriter) throws {
        // min and max are recorded Float32 values; the rest are computed Doubles.
        try writer.begin(columns: columns, float32Columns: [10, 11])
        for row in result.rows { try writer.write(row.values) }
        try writer.finish()
    }

    static func sorted(_ rows: [Row], by sort: Sort?) -> [Row] {
        // Stable tie-break: layer, unit, gate.
        func natural(_ a: Row, _ b: Row) -> Bool {
            (a.layer.layerID, a.unit, a.layer.cell.planeIndex(of: a.gate.rawValue) ?? 0) < (b.layer.layerID, b.unit, b.layer.cell.planeIndex(of: b.gate.rawValue) ?? 0)
        }
        func descending(_ key: @escaping (Row) -> Double?) -> (Row, Row) -> Bool {
            { a, b in
                switch (key(a), key(b)) {
                case let (x?, y?): return x != y ? x > y : natural(a, b)
                case (.some, nil): return true
                case (nil, .some): return false
                case (nil, nil): return natural(a, b)
                }
            }
        }
        switch sort {
        case nil, .unit?: return rows.sorted(by: natural)
        case .right?: return rows.sorted(by: descending { $0.right })
        case .left?: return rows.sorted(by: descending { $0.left })
        case .mean?: return rows.sorted(by: descending { $0.mean })
        }
    }

    // MARK: full scan

    struct ScanKey: Hashable {
        var layerID: Int64
        var unit: Int
        var gate: Gate
    }

    /// Exact counts below/above the gate's thresholds, plus the exact sums of the moments when
    /// asked (the same order-independent sums the summaries keep, so a scan equals them bit for bit).
    struct Accumulator {
        var n: Int64 = 0
        var below: Int64 = 0
        var above: Int64 = 0
        var sums: ExactSums? = nil
        var min = Double.infinity
        var max = -Double.infinity
        var mean: Double { sums?.moments(n: n).mean ?? 0 }
        var m2: Double { sums?.moments(n: n).m2 ?? 0 }

        /// Adds the counts and sums of another part of the rows.
        mutating func merge(_ other: Accumulator) {
            guard other.n > 0 else { return }
            guard n > 0 else { self = other; return }
            n += other.n
            if let o = other.sums { sums = sums.map { var s = $0; s.merge(o); return s } ?? o }
            below += other.below
            above += other.above
            min = Swift.min(min, other.min)
            max = Swift.max(max, other.max)
        }
    }

    /// Exact counts (and moments when asked) from the run's `gates` rows, counted in Swift:
    /// SQLite's GROUP BY would sort all rows first, which costs several times the scan itself.
    /// Big runs are split into sequence ranges scanned in parallel, one read-only connection each
    /// (the scan is bound by SQLite decoding rows, so it scales with the cores).
    static func scan(_ db: Database, run: Int64, layers: [LayerInfo], gates: Set<Gate>,
                     low: Double, high: Double, moments: Bool, partitions count: Int? = nil) throws -> [ScanKey: Accumulator] {
        guard !gates.isEmpty, !layers.isEmpty else { return [:] }
        let parts = try partitions(db, run: run, count: count)
        var result: [ScanKey: Accumulator] = [:]
        // One pass over each cell's table, for the layers of that cell.
        for cell in CellKind.allCases {
            let cellLayers = layers.filter { $0.cell == cell }
            let ordered = Gate.of(cell).filter(gates.contains)
            guard !cellLayers.isEmpty, !ordered.isEmpty else { continue }
            let plan = ScanPlan(table: cell.table, layers: cellLayers, gates: ordered, low: low, high: high, moments: moments)
            var acc: [Accumulator]
            if parts.count <= 1 {
                acc = try plan.scan(db, run: run, seqs: parts.first)
            } else {
                var results = [Swift.Result<[Accumulator], Error>](repeating: .success([]), count: parts.count)
                let path = db.path
                results.withUnsafeMutableBufferPointer { slots in
                    let out = slots  // each iteration writes only its own slot
                    DispatchQueue.concurrentPerform(iterations: parts.count) { k in
                        out[k] = Swift.Result {
                            let connection = try ReadAccess.open(path)
                            return try plan.scan(connection, run: run, seqs: parts[k])
                        }
                    }
                }
                acc = try results[0].get()
                for part in results.dropFirst() {
                    let other = try part.get()
                    for k in acc.indices { acc[k].merge(other[k]) }
                }
            }
            for layer in cellLayers {
                for unit in 0..<layer.units {
                    for (k, gate) in ordered.enumerated() {
                        let a = acc[(plan.base[Int(layer.layerID)] + unit) * plan.width + k]
                        if a.n > 0 { result[ScanKey(layerID: layer.layerID, unit: unit, gate: gate)] = a }
                    }
                }
            }
        }
        return result
    }

    /// Sequence-id ranges of about equal size, one per core, for runs big enough to be worth it.
    static func partitions(_ db: Database, run: Int64, count requested: Int? = nil) throws -> [ClosedRange<Int64>] {
        var cores = min(ProcessInfo.processInfo.activeProcessorCount, 16)
        if try (db.scalar("SELECT row_count FROM runs WHERE run_id = ?", run)?.int64Value ?? 0) < 1_000_000 { cores = 1 }
        if let requested { cores = requested }
        guard cores > 1, db.path != ":memory:", !db.path.isEmpty,
              let lo = try db.scalar("SELECT min(seq_id) FROM sequences WHERE run_id = ?", run)?.int64Value,
              let hi = try db.scalar("SELECT max(seq_id) FROM sequences WHERE run_id = ?", run)?.int64Value,
              hi > lo else { return [] }
        let count = Swift.min(Int64(cores), hi - lo + 1)
        let size = (hi - lo + 1 + count - 1) / count
        return stride(from: lo, through: hi, by: Int(size)).map { $0...min(hi, $0 + size - 1) }
    }

    /// What one scan counts, in flat arrays: slot = (base of layer + unit) * width + gate.
    struct ScanPlan: Sendable {
        /// The cell table scanned (from `CellKind.table`, never user text).
        let table: String
        let gates: [Gate]
        let width: Int
        let base: [Int]
        let unitsOf: [Int]
        let total: Int
        let leftT: [Double]
        let rightT: [Double]
        let moments: Bool

        init(table: String, layers: [LayerInfo], gates: [Gate], low: Double, high: Double, moments: Bool) {
            self.table = table
            let maxLayerID = Int(layers.map(\.layerID).max()!)
            var base = [Int](repeating: -1, count: maxLayerID + 1)
            var unitsOf = [Int](repeating: 0, count: maxLayerID + 1)
            var total = 0
            for layer in layers {
                base[Int(layer.layerID)] = total
                unitsOf[Int(layer.layerID)] = layer.units
                total += layer.units
            }
            let limits = gates.map { Stats.thresholds(for: $0, low: low, high: high) }
            self.gates = gates
            self.width = gates.count
            self.base = base
            self.unitsOf = unitsOf
            self.total = total
            self.leftT = limits.map { $0?.left ?? -Double.infinity }
            self.rightT = limits.map { $0?.right ?? Double.infinity }
            self.moments = moments
        }

        /// Counts the rows of `run` (only sequences `seqs` when given) on `db`.
        func scan(_ db: Database, run: Int64, seqs: ClosedRange<Int64>?) throws -> [Accumulator] {
            // Table and column names come from the cell descriptor, never from user text.
            let sql = "SELECT layer_id, unit, " + gates.map(\.rawValue).joined(separator: ", ")
                + " FROM \(table) WHERE run_id = ? AND seq_id BETWEEN ? AND ?"
            let statement = try db.prepare(sql)
            try statement.bind([run, seqs?.lowerBound ?? Int64.min, seqs?.upperBound ?? Int64.max])
            var acc = [Accumulator](repeating: Accumulator(), count: total * width)
            let handle = statement.handle
            let maxLayerID = base.count - 1
            try acc.withUnsafeMutableBufferPointer { buffer in
                let cells = buffer.baseAddress!
                while true {
                    let rc = sqlite3_step(handle)
                    if rc == SQLITE_DONE { break }
                    guard rc == SQLITE_ROW else {
                        throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(db.handle)), sql: sql)
                    }
                    let layerID = Int(sqlite3_column_int64(handle, 0))
                    guard layerID >= 0, layerID <= maxLayerID, base[layerID] >= 0 else { continue }
                    let unit = Int(sqlite3_column_int64(handle, 1))
                    guard unit >= 0, unit < unitsOf[layerID] else { continue }
                    let row = cells + (base[layerID] + unit) * width
                    for k in 0..<width {
                        let v = sqlite3_column_double(handle, Int32(2 + k))
                        let a = row + k
                        a.pointee.n += 1
                        if v < leftT[k] { a.pointee.below += 1 }
                        if v > rightT[k] { a.pointee.above += 1 }
                        if moments {
                            if a.pointee.sums == nil { a.pointee.sums = ExactSums() }
                            a.pointee.sums!.add(Float(v))
                            if v < a.pointee.min { a.pointee.min = v }
                            if v > a.pointee.max { a.pointee.max = v }
                        }
                    }
                }
            }
            return acc
        }
    }
}
