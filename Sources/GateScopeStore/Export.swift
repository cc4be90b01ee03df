import CSQLite
import Foundation

/// Streams a run's gate values as rows (wide: one row per step and unit; long: one per gate value),
/// ordered by sequence, layer, step, unit, in constant memory.
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
        /// Gates, in storage order.
        public var gates: [Gate] = Gate.allCases
        /// Steps; nil = all.
        public var steps: IndexRanges?
        /// One row per gate value (`...,unit,gate,value`) instead of one column per gate.
        public var long = false

        /// Everything of the latest complete run, wide.
        public init() {}
    }

    /// Column names for `options`.
    public static func columns(_ options: Options) -> [String] {
        let head = ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit"]
        return head + (options.long ? ["gate", "value"] : gates(options).map(\.rawValue))
    }

    static func gates(_ options: Options) -> [Gate] {
        options.gates.isEmpty ? Gate.allCases : Gate.allCases.filter(options.gates.contains)
    }

    /// Writes the rows to `writer` (which streams them); returns the number of rows written.
    @discardableResult
    public static func write(_ db: Database, options: Options, to writer: RowWriter) throws -> Int64 {
        let run = try ReadAccess.run(db, id: options.run)
        let layers = try ReadAccess.layers(db, run: run.runID, matching: options.layers)
        let gates = gates(options)

        // Layers and units are filtered here by table lookup; sequences and steps in SQL, where the
        // primary key (run_id, seq_id, layer_id, step, unit) also gives the output order for free.
        let maxLayerID = Int(layers.map(\.layerID).max() ?? 0)
        var layerByID = [LayerInfo?](repeating: nil, count: maxLayerID + 1)
        for layer in layers { layerByID[Int(layer.layerID)] = layer }

        let sql = """
            SELECT g.seq_id, s.source_id, g.layer_id, g.step, coalesce(t.token, t.token_id), g.unit, \
            \(gates.map { "g." + $0.rawValue }.joined(separator: ", "))
            FROM gates AS g
            JOIN sequences AS s ON s.run_id = g.run_id AND s.seq_id = g.seq_id
            LEFT JOIN tokens AS t ON t.run_id = g.run_id AND t.seq_id = g.seq_id AND t.step = g.step
            WHERE g.run_id = :run AND g.seq_id BETWEEN :seq_lo AND :seq_hi
              AND g.step BETWEEN :step_lo AND :step_hi
            ORDER BY g.seq_id, g.layer_id, g.step, g.unit
            """
        let statement = try db.prepare(sql)
        let handle = statement.handle
        let stepBounds = bounds(options.steps)

        let names = columns(options)
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
                row.append(statement.value(at: 4))
                row.append(.integer(Int64(unit)))
                if options.long {
                    for (k, gate) in gates.enumerated() {
                        row.removeSubrange(8...)
                        row.append(.text(gate.rawValue))
                        row.append(.real(sqlite3_column_double(handle, Int32(6 + k))))
                        try writer.write(row)
                        written += 1
                    }
                } else {
                    for k in gates.indices { row.append(.real(sqlite3_column_double(handle, Int32(6 + k)))) }
                    try writer.write(row)
                    written += 1
                }
            }
        }
        try writer.finish()
        return written
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
