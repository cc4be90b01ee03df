import CSQLite
import Foundation
import GateScopeEngine

/// Streams a run's gate values as rows (wide: one row per step and unit; long: one per gate value),
/// ordered by sequence, layer, step, unit, in constant memory.
///
/// Columns are named after the selected layers' gates: `i,f,g,o,c,h` for LSTM layers, `z,r,n,h`
/// for GRU layers, `h` for SimpleRNN. When layers of several cells are exported together, the wide
/// form has the union of their gates (in cell order: LSTM's, then GRU's z, r, n, ...) and a row
/// leaves empty (NULL) the columns its cell lacks; the long form gives each row only its own
/// cell's gates. A token is given only for layers whose steps line up with the first input.
public enum Export {
    /// What to export.
    public struct Options: Sendable {
        /// Run id; nil = the latest complete run.
        public var run: Int64?
        /// Sequence ids (ranges allowed); nil = all.
        public var sequences: IndexRanges?
        /// Layer filters; empty = every recorded layer half.
        public var layers: [LayerFilter] = []
        /// Units; nil = all.
        public var units: IndexRanges?
        /// Gates to export (each layer gives those its cell has); empty = all of them.
        public var gates: [Gate] = []
        /// Steps; nil = all.
        public var steps: IndexRanges?
        /// One row per gate value (`...,unit,gate,value`) instead of one column per gate.
        public var long = false

        /// Everything of the latest complete run, wide.
        public init() {}
    }

    /// Column names for `options` when exporting `layers`.
    public static func columns(_ options: Options, layers: [LayerInfo]) -> [String] {
        let head = ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit"]
        return head + (options.long ? ["gate", "value"] : gates(options, layers: layers).map(\.rawValue))
    }

    /// The wide columns: the union of the layers' selected gates, cell by cell in `CellKind` order.
    static func gates(_ options: Options, layers: [LayerInfo]) -> [Gate] {
        var out: [Gate] = []
        for cell in CellKind.allCases where layers.contains(where: { $0.cell == cell }) {
            for gate in Gate.of(cell) where (options.gates.isEmpty || options.gates.contains(gate)) && !out.contains(gate) {
                out.append(gate)
            }
        }
        return out
    }

    /// Writes the rows to `writer` (which streams them); returns the number of rows written.
    @discardableResult
    public static func write(_ db: Database, options: Options, to writer: RowWriter) throws -> Int64 {
        let run = try ReadAccess.run(db, id: options.run)
        try run.requireRows(for: "export")
        let layers = try ReadAccess.layers(db, run: run.runID, matching: options.layers)
        try Stats.checkGates(options.gates, layers: layers)
        let gates = gates(options, layers: layers)
        try checkFilters(db, run: run.runID, layers: layers, options: options)

        // Layers and units are filtered here by table lookup; sequences and steps in SQL, where the
        // primary key (run_id, seq_id, layer_id, step, unit) also gives the output order for free.
        let maxLayerID = Int(layers.map(\.layerID).max() ?? 0)
        var layerByID = [LayerInfo?](repeating: nil, count: maxLayerID + 1)
        for layer in layers { layerByID[Int(layer.layerID)] = layer }

        // One arm per cell table; a column the cell lacks is NULL. Table and column names come
        // from the cell descriptor, never from user text.
        let cells = CellKind.allCases.filter { c in layers.contains { $0.cell == c } }
        // A few units are also selected in SQL, so that the unit index (`gatescope index`) can
        // seek to them instead of reading the whole run; without it, SQLite scans as before.
        var unitFilter = "", unitValues: [String: Int64] = [:]
        if let units = options.units {
            let count = units.ranges.reduce(0) { $0 + $1.count }
            if units.ranges.count == 1 {
                unitFilter = "\n  AND g.unit BETWEEN :unit_lo AND :unit_hi"
                unitValues = [":unit_lo": Int64(units.ranges[0].lowerBound), ":unit_hi": Int64(units.ranges[0].upperBound)]
            } else if count <= 256 {
                let list = units.ranges.flatMap { Array($0) }
                unitFilter = "\n  AND g.unit IN (" + list.indices.map { ":unit_\($0)" }.joined(separator: ", ") + ")"
                for (k, u) in list.enumerated() { unitValues[":unit_\(k)"] = Int64(u) }
            }
            let ids = layers.map(\.layerID)
            unitFilter += "\n  AND g.layer_id IN (" + ids.indices.map { ":layer_\($0)" }.joined(separator: ", ") + ")"
            for (k, id) in ids.enumerated() { unitValues[":layer_\(k)"] = id }
        }
        // With a unit filter and the unit index, the gate rows are the outer loop, read through the
        // index (SQLite's planner would rather walk every sequence of the range).
        let seek = try !unitFilter.isEmpty && cells.allSatisfy { try UnitIndex.hasIndex(db, cell: $0) }
        let arms = cells.map { cell -> String in
            let columns = gates.map { cell.planes.contains($0.rawValue) ? "g." + $0.rawValue : "NULL" }
            return """
                SELECT g.seq_id, s.source_id, g.layer_id, g.step, coalesce(t.token, t.token_id), g.unit\
                \(columns.map { ", " + $0 }.joined())
                FROM \(cell.table) AS g\(seek ? " INDEXED BY " + UnitIndex.indexName(cell) + " CROSS" : "")
                JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
                LEFT JOIN tokens AS t ON t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step
                WHERE g.run_id = :run AND g.seq_id BETWEEN :seq_lo AND :seq_hi
                  AND g.step BETWEEN :step_lo AND :step_hi\(unitFilter)
                """
        }
        // One table gives the primary-key order for free; several are merged by SQLite.
        let sql = arms.count == 1 ? arms[0] + "\nORDER BY g.seq_id, g.layer_id, g.step, g.unit"
            : arms.joined(separator: "\nUNION ALL\n") + "\nORDER BY 1, 3, 4, 6"
        guard !arms.isEmpty else {
            try writer.begin(columns: columns(options, layers: layers), float32Columns: [])
            try writer.finish()
            return 0
        }
        let statement = try db.prepare(sql)
        let handle = statement.handle
        let stepBounds = bounds(options.steps)

        let names = columns(options, layers: layers)
        // Long form: per cell, (wide column, gate) in the cell's plane order.
        var longColumns: [CellKind: [(Int, Gate)]] = [:]
        for cell in cells {
            longColumns[cell] = Gate.of(cell).compactMap { g in gates.firstIndex(of: g).map { ($0, g) } }
        }
        // Gate values (the columns after `unit`, or `value` in long form) are Float32s.
        try writer.begin(columns: names, float32Columns: options.long ? [names.count - 1] : Set(8..<names.count))
        var written: Int64 = 0
        var row: [SQLiteValue] = []
        row.reserveCapacity(8 + max(2, gates.count))
        let runValue = SQLiteValue.integer(run.runID)
        for seqRange in merged(options.sequences) {
            try statement.reset()
            try statement.bind(run.runID, name: ":run")
            try statement.bind(Int64(seqRange.lowerBound), name: ":seq_lo")
            try statement.bind(Int64(seqRange.upperBound), name: ":seq_hi")
            for (name, value) in unitValues { try statement.bind(value, name: name) }
            try statement.bind(Int64(stepBounds.lowerBound), name: ":step_lo")
            try statement.bind(Int64(stepBounds.upperBound), name: ":step_hi")
            while try statement.step() {
                let layerID = Int(sqlite3_column_int64(handle, 2))
                guard layerID >= 0, layerID <= maxLayerID, let layer = layerByID[layerID] else { continue }
                let step = Int(sqlite3_column_int64(handle, 3))
                let unit = Int(sqlite3_column_int64(handle, 5))
                if let units = options.units, !units.contains(unit) { continue }
                if let steps = options.steps, !steps.contains(step) { continue }
                row.removeAll(keepingCapacity: true)
                row.append(runValue)
                row.append(.integer(sqlite3_column_int64(handle, 0)))
                row.append(statement.value(at: 1))
                row.append(.text(layer.name))
                row.append(.text(layer.direction))
                row.append(.integer(Int64(step)))
                row.append(layer.aligned ? statement.value(at: 4) : .null)
                row.append(.integer(Int64(unit)))
                if options.long {
                    // The layer's own gates, in its cell's plane order.
                    for (k, gate) in longColumns[layer.cell]! {
                        row.removeSubrange(8...)
                        row.append(.text(gate.rawValue))
                        row.append(.real(sqlite3_column_double(handle, Int32(6 + k))))
                        try writer.write(row)
                        written += 1
                    }
                } else {
                    for k in gates.indices {
                        row.append(sqlite3_column_type(handle, Int32(6 + k)) == SQLITE_NULL ? .null : .real(sqlite3_column_double(handle, Int32(6 + k))))
                    }
                    try writer.write(row)
                    written += 1
                }
            }
        }
        try writer.finish()
        return written
    }

    /// A filter that selects nothing the run has is an error naming the valid range (rather than
    /// an empty export that looks like success).
    static func checkFilters(_ db: Database, run: Int64, layers: [LayerInfo], options: Options) throws {
        if let units = options.units, let widest = layers.map(\.units).max(),
           !units.ranges.contains(where: { $0.lowerBound < widest }) {
            throw StoreError("run \(run) has no unit \(units) in \(layers.map(\.label).joined(separator: ", ")) (units 0-\(widest - 1))")
        }
        guard options.sequences != nil || options.steps != nil,
              let row = try db.query("SELECT min(seq_id), max(seq_id), max(length), count(*) FROM sequences WHERE run_id = ?", [run]).nextRow(),
              let count = row[3].int64Value, count > 0, let lo = row[0].int64Value, let hi = row[1].int64Value,
              let longest = row[2].int64Value else { return }
        if let seqs = options.sequences, !seqs.ranges.contains(where: { Int64($0.upperBound) >= lo && Int64($0.lowerBound) <= hi }) {
            throw StoreError("run \(run) has no sequence \(seqs) (sequences \(lo)-\(hi))")
        }
        if let steps = options.steps, !steps.ranges.contains(where: { Int64($0.lowerBound) < longest }) {
            throw StoreError("run \(run) has no step \(steps) (its longest sequence has steps 0-\(longest - 1))")
        }
    }

    /// The enclosing range of a filter (everything when nil).
    static func bounds(_ ranges: IndexRanges?) -> ClosedRange<Int> {
        guard let ranges, !ranges.ranges.isEmpty else { return 0...Int(Int64.max) }
        return ranges.ranges.map(\.lowerBound).min()!...ranges.ranges.map(\.upperBound).max()!
    }

    /// Sorted, non-overlapping ranges, so one query per range keeps the rows in seq order.
    static func merged(_ ranges: IndexRanges?) -> [ClosedRange<Int>] {
        guard let ranges, !ranges.ranges.isEmpty else { return [0...Int(Int64.max)] }
        var result: [ClosedRange<Int>] = []
        for r in ranges.ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, r.lowerBound - 1 <= last.upperBound {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                result.append(r)
            }
        }
        return result
    }
}
