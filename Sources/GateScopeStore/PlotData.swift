import CSQLite
import Foundation
import GateScopeEngine

// Read-only queries that collect what `gatescope plot` draws. The rendering lives in
// GateScopePlot, which knows nothing about SQLite; these return plain values the CLI maps over.

/// Data for the plots: per-unit saturation, heatmap matrices and single-unit series.
public enum PlotData {
    /// One recorded sequence of a run.
    public struct SequenceRef: Equatable, Sendable {
        public var seqID: Int64
        /// Steps in the input (masked ones included).
        public var length: Int
        /// The input file's id for the sequence, if any.
        public var sourceID: String?

        /// "sequence 3" or "sequence 3 ('abc')" for titles.
        public var label: String { "sequence \(seqID)" + (sourceID.map { " (‘\($0)’)" } ?? "") }
    }

    /// Saturation fractions of one unit for the gates asked for.
    public struct UnitSaturation: Equatable, Sendable {
        public var layerID: Int64
        public var unit: Int
        /// Number of recorded steps of the unit.
        public var n: Int64
        /// Fraction of steps below `low` (sigmoid gates) or below `-high` (g, h), per gate.
        public var left: [Gate: Double]
        /// Fraction of steps above `high`, per gate.
        public var right: [Gate: Double]
    }

    /// Gate values of a units × steps window of one layer over one sequence.
    public struct Window: Equatable, Sendable {
        /// Unit numbers (rows), in ascending order.
        public var units: [Int]
        /// Step numbers (columns), consecutive.
        public var steps: [Int]
        /// `values[gate][u][s]`; nil where the step has no row (masked).
        public var values: [Gate: [[Double?]]]
        /// Token text per step, or nil when the run has no tokens for this sequence. A token id
        /// without vocabulary text is given as "#id".
        public var tokens: [String?]?
    }

    /// Per-unit saturation of run `run` (default: the latest complete run) for the layers matching
    /// `layers` (all when empty), as `stats` computes it (exact for any thresholds: unit-range
    /// gates left < low, right > high; signed ones left < -high, right > high). A unit has values
    /// only for the gates its cell has. Units without recorded steps are left out. Returns the run,
    /// the layers in layer_id order and the gates drawn: `gates`, or when empty every unit-range
    /// gate of the layers (LSTM i, f, o; GRU z, r).
    public static func saturation(_ db: Database, run: Int64?, layers: [LayerFilter] = [], low: Double = 0.1,
                                  high: Double = 0.9, gates requested: [Gate] = [])
        throws -> (run: RunInfo, layers: [LayerInfo], units: [UnitSaturation], gates: [Gate]) {
        if let c = requested.first(where: { $0.grid == nil }) {
            throw StoreError("\(c) has no saturation (no fixed range): use gates with a range, e.g. i, f, o, g, h, z, r, n")
        }
        let runInfo = try ReadAccess.run(db, id: run)
        let selected = try ReadAccess.layers(db, run: runInfo.runID, matching: layers)
        var gates = requested
        if gates.isEmpty {
            for layer in selected { for g in layer.gates where g.range == .unit && !gates.contains(g) { gates.append(g) } }
        }
        var options = Stats.Options()
        options.run = runInfo.runID
        options.layers = layers
        options.gates = gates
        options.low = low
        options.high = high
        let result = try Stats.compute(db, options: options)
        var units: [UnitSaturation] = []
        var index: [UnitKey: Int] = [:]
        var layerList: [LayerInfo] = []
        for row in result.rows {
            if !layerList.contains(where: { $0.layerID == row.layer.layerID }) { layerList.append(row.layer) }
            guard row.n > 0, let left = row.left, let right = row.right else { continue }
            let key = UnitKey(layerID: Int(row.layer.layerID), unit: row.unit)
            if index[key] == nil {
                index[key] = units.count
                units.append(UnitSaturation(layerID: row.layer.layerID, unit: row.unit, n: row.n, left: [:], right: [:]))
            }
            units[index[key]!].left[row.gate] = left
            units[index[key]!].right[row.gate] = right
        }
        units.sort { ($0.layerID, $0.unit) < ($1.layerID, $1.unit) }
        return (result.run, layerList.sorted { $0.layerID < $1.layerID }, units, gates)
    }

    /// The sequence named by `text`: a seq_id, or else a source id from the input file.
    public static func sequence(_ db: Database, run: Int64, _ text: String) throws -> SequenceRef {
        func read(_ rows: ResultSet) throws -> SequenceRef? {
            guard let row = try rows.nextRow() else { return nil }
            return SequenceRef(seqID: row[0].int64Value ?? 0, length: Int(row[1].int64Value ?? 0), sourceID: row[2].stringValue)
        }
        if let id = Int64(text), let found = try read(db.query(
            "SELECT seq_id, length, source_id FROM sequences WHERE run_id = ? AND seq_id = ?", [run, id])) {
            return found
        }
        if let found = try read(db.query(
            "SELECT seq_id, length, source_id FROM sequences WHERE run_id = ? AND source_id = ? ORDER BY seq_id LIMIT 1", [run, text])) {
            return found
        }
        let range = try db.query("SELECT min(seq_id), max(seq_id), count(*) FROM sequences WHERE run_id = ?", [run]).nextRow()
        let known: String
        if let range, let count = range[2].int64Value, count > 0 {
            known = "its sequences are \(range[0])-\(range[1])"
        } else {
            known = "it has no recorded sequences"
        }
        throw StoreError("run \(run) has no sequence '\(text)' (\(known); a source id works too)")
    }

    /// Steps `steps` (default: the whole sequence) clamped to the sequence, with a clear error
    /// when the range lies outside it.
    public static func stepRange(_ seq: SequenceRef, requested: ClosedRange<Int>?) throws -> ClosedRange<Int> {
        guard seq.length > 0 else {
            throw StoreError("\(seq.label) is empty (length 0)")
        }
        let all = 0...(seq.length - 1)
        guard let requested else { return all }
        guard requested.lowerBound < seq.length else {
            throw StoreError("steps \(requested.lowerBound)-\(requested.upperBound) are past the end of \(seq.label) (steps 0-\(seq.length - 1))")
        }
        return requested.clamped(to: all)
    }

    /// Gate values of `units` (default all of the layer) over `steps` of one sequence, with tokens
    /// (only when the layer's steps line up with the first input's). Only the gates in `gates`
    /// (default: all of the layer's cell) are filled in `Window.values`; a gate the cell lacks is an error.
    public static func window(_ db: Database, run: Int64, seq: SequenceRef, layer: LayerInfo, units: [Int]? = nil,
                              steps: ClosedRange<Int>, gates requested: [Gate]? = nil) throws -> Window {
        try ReadAccess.run(db, id: run).requireRows(for: "a per-step plot")
        let unitList = units ?? Array(0..<layer.units)
        if let bad = unitList.first(where: { $0 < 0 || $0 >= layer.units }) {
            throw StoreError("layer '\(layer.label)' has no unit \(bad) (units 0-\(layer.units - 1))")
        }
        let planes = layer.gates
        let gates = requested ?? planes
        if let missing = gates.first(where: { !planes.contains($0) }) {
            throw StoreError("layer '\(layer.label)' is a \(layer.cell.className), which has no gate \(missing) (its gates: \(planes.map(\.rawValue).joined(separator: ", ")))")
        }
        let row = Dictionary(unitList.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let stepList = Array(steps)
        let empty = [[Double?]](repeating: [Double?](repeating: nil, count: stepList.count), count: unitList.count)
        var values = Dictionary(uniqueKeysWithValues: gates.map { ($0, empty) })
        let columnOf = gates.map { planes.firstIndex(of: $0)! }
        // Table and columns come from the cell descriptor, never from user text.
        // A single unit uses `unit = ?` (cheap); otherwise every unit of the step range is read.
        let single = unitList.count == 1 ? unitList[0] : nil
        let rows = try db.query("""
            SELECT step, unit, \(planes.map(\.rawValue).joined(separator: ", ")) FROM \(layer.cell.table)
            WHERE run_id = :run AND seq_id = :seq AND layer_id = :layer AND step BETWEEN :from AND :to
              AND (:unit IS NULL OR unit = :unit)
            """, named: [":run": run, ":seq": seq.seqID, ":layer": layer.layerID, ":from": steps.lowerBound,
                         ":to": steps.upperBound, ":unit": single.map { SQLiteValue.integer(Int64($0)) } ?? .null])
        let st = rows.statement
        while try st.step() {
            guard let u = row[st.int(at: 1)] else { continue }
            let s = st.int(at: 0) - steps.lowerBound
            for (k, gate) in gates.enumerated() { values[gate]![u][s] = st.double(at: 2 + columnOf[k]) }
        }
        return Window(units: unitList, steps: stepList, values: values,
                      tokens: layer.aligned ? try tokens(db, run: run, seq: seq.seqID, steps: steps) : nil)
    }

    /// Token text per step of `steps`, or nil when the sequence has no token rows.
    public static func tokens(_ db: Database, run: Int64, seq: Int64, steps: ClosedRange<Int>) throws -> [String?]? {
        let rows = try db.query("""
            SELECT step, token_id, token FROM tokens
            WHERE run_id = ? AND seq_id = ? AND step BETWEEN ? AND ?
            """, [run, seq, steps.lowerBound, steps.upperBound])
        var out = [String?](repeating: nil, count: steps.count)
        var any = false
        let st = rows.statement
        while try st.step() {
            any = true
            out[st.int(at: 0) - steps.lowerBound] = st.string(at: 2) ?? "#\(st.int64(at: 1))"
        }
        return any ? out : nil
    }
}
