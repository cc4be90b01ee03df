import CSQLite
import Foundation
import GateScopeEngine

/// Answers of the shipped named queries from what recording stored (`unit_summaries`,
/// `unit_pairs`, `unit_spans`) instead of scanning every gate row. Each answer equals, value for
/// value and in the same order, what the query's SQL (`queries/NAME.sql`) returns; where the
/// stored data cannot answer (a threshold off the grid, a run recorded by an older release) the
/// caller runs the SQL. `StoredAnswersTests` checks both paths against each other.
enum StoredAnswers {
    /// The rows of built-in query `name` for the bound parameters, or nil when only a scan can answer.
    static func rows(of name: String, bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard case let .integer(run)? = bound["run"] else { return nil }
        var layers = try ReadAccess.layers(db, run: run)
        if case let .text(layer)? = bound["layer"] { layers = layers.filter { $0.name == layer } }
        if case let .text(direction)? = bound["direction"] { layers = layers.filter { $0.direction == direction } }
        switch name {
        case "integrators": return try integrators(run: run, layers: layers, bound: bound, db: db)
        case "dead-units": return try deadUnits(run: run, layers: layers, bound: bound, db: db)
        case "saturation": return try saturation(run: run, layers: layers, bound: bound, db: db)
        case "memory-spans": return try memorySpans(run: run, layers: layers, bound: bound, db: db)
        case "unit-correlation": return try unitCorrelation(run: run, layers: layers, bound: bound, db: db)
        default: return nil
        }
    }

    /// A bound number as Double (an integer binds as INTEGER), nil for NULL or text.
    static func number(_ v: SQLiteValue?) -> Double? {
        switch v {
        case let .integer(i)?: return Double(i)
        case let .real(d)?: return d
        default: return nil
        }
    }

    /// The summaries of the selected layers, nil unless every unit of every one has all its
    /// gates stored with exact sums (a run that has not completed has none; an older release's
    /// Welford moments would not equal the SQL's exact mean).
    static func summaries(run: Int64, layers: [LayerInfo], db: Database) throws -> [UnitKey: [Gate: GateSummary]]? {
        let all = try GateSummary.load(from: db, runID: run)
        for l in layers {
            for unit in 0..<l.units {
                guard let gates = all[UnitKey(layerID: Int(l.layerID), unit: unit)],
                      l.gates.allSatisfy({ gates[$0] != nil && gates[$0]!.storedMoments == nil }) else { return nil }
            }
        }
        return all
    }

    static func base(_ run: Int64, _ l: LayerInfo, _ unit: Int) -> [SQLiteValue] {
        [.integer(run), .text(l.name), .text(l.direction), .integer(Int64(unit))]
    }

    static func integrators(run: Int64, layers: [LayerInfo], bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard let high = number(bound["high"]), let fraction = number(bound["fraction"]),
              let all = try summaries(run: run, layers: layers, db: db) else { return nil }
        var hits: [(right: Double, layer: Int64, unit: Int, row: [SQLiteValue])] = []
        for l in layers {
            guard let memory = l.cell.memoryGate, let gate = Gate(rawValue: memory) else { continue }
            for unit in 0..<l.units {
                guard let s = all[UnitKey(layerID: Int(l.layerID), unit: unit)]?[gate], s.n > 0 else { continue }
                guard let above = s.countAbove(high) else { return nil }
                // As the SQL's sum(...) * 1.0 / count(*): both Doubles, one division.
                let right = Double(above) / Double(s.n)
                guard right > fraction else { continue }
                hits.append((right, l.layerID, unit, base(run, l, unit) + [.text(memory), .integer(s.n), .real(right), .real(s.mean), .real(s.min)]))
            }
        }
        hits.sort { ($0.right, $1.layer, $1.unit) > ($1.right, $0.layer, $0.unit) }
        return hits.map(\.row)
    }

    static func deadUnits(run: Int64, layers: [LayerInfo], bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard let threshold = number(bound["threshold"]), let all = try summaries(run: run, layers: layers, db: db) else { return nil }
        var hits: [(maxAbs: Double, layer: Int64, unit: Int, row: [SQLiteValue])] = []
        for l in layers {
            for unit in 0..<l.units {
                guard let s = all[UnitKey(layerID: Int(l.layerID), unit: unit)]?[.h], s.n > 0 else { continue }
                let maxAbs = Swift.max(abs(s.min), abs(s.max))
                guard maxAbs < threshold else { continue }
                hits.append((maxAbs, l.layerID, unit, base(run, l, unit) + [.integer(s.n), .real(maxAbs), .real(s.mean)]))
            }
        }
        hits.sort { ($0.maxAbs, $0.layer, $0.unit) < ($1.maxAbs, $1.layer, $1.unit) }
        return hits.map(\.row)
    }

    /// What `stats` computes from the same summaries, in the query's columns (`Stats.columns`),
    /// without the units that have no steps (the SQL's GROUP BY has no row for them).
    static func saturation(run: Int64, layers: [LayerInfo], bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard let low = number(bound["low"]), let high = number(bound["high"]),
              let all = try summaries(run: run, layers: layers, db: db) else { return nil }
        var options = Stats.Options()
        options.low = low
        options.high = high
        let plan = try Stats.summaryRows(run: run, file: db.path, layers: layers, summaries: all, options: options)
        guard plan.offGrid.isEmpty else { return nil }
        return plan.rows.filter { $0.n > 0 }.map(\.values)
    }

    static func memorySpans(run: Int64, layers: [LayerInfo], bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard let threshold = number(bound["threshold"]), case let .integer(minLength)? = bound["min_length"] else { return nil }
        let k = Int((threshold * Double(SpanAccumulator.grid)).rounded())
        guard (0...SpanAccumulator.grid).contains(k), SpanAccumulator.thresholds[k] == threshold else { return nil }
        let withGate = layers.filter { $0.cell.memoryGate != nil }
        guard withGate.allSatisfy({ $0.spansStored == true }) else { return nil }
        let st = try db.prepare("""
            SELECT unit, longest, seq_id, first_step, spans FROM unit_spans
            WHERE run_id = ? AND layer_id = ? AND k = ? AND longest >= ?
            """)
        var hits: [(longest: Int64, layer: Int64, unit: Int64, row: [SQLiteValue])] = []
        for l in withGate {
            try st.reset()
            try st.bind([run, l.layerID, k, minLength])
            while try st.step() {
                let unit = st.int64(at: 0), longest = st.int64(at: 1), first = st.int64(at: 3)
                hits.append((longest, l.layerID, unit, [.integer(run), .text(l.name), .text(l.direction), .integer(unit), .integer(longest),
                                                        .integer(st.int64(at: 2)), .integer(first), .integer(first + longest - 1), .integer(st.int64(at: 4))]))
            }
        }
        hits.sort { ($1.longest, $0.layer, $0.unit) < ($0.longest, $1.layer, $1.unit) }
        return hits.map(\.row)
    }

    static func unitCorrelation(run: Int64, layers: [LayerInfo], bound: [String: SQLiteValue], db: Database) throws -> [[SQLiteValue]]? {
        guard case let .integer(limit)? = bound["limit"] else { return nil }
        guard layers.allSatisfy({ $0.pairsStored == true }) else { return nil }
        guard !layers.isEmpty else { return [] }
        let ids = layers.map { String($0.layerID) }.joined(separator: ", ")  // integers from the database
        let rows = try db.query("""
            SELECT p.layer_id, p.unit_a, p.unit_b, m.n, p.r
            FROM unit_pairs AS p
            JOIN unit_h_moments AS m ON m.run_id = p.run_id AND m.layer_id = p.layer_id AND m.unit = p.unit_a
            WHERE p.run_id = ? AND p.layer_id IN (\(ids))
            ORDER BY p.r IS NULL, abs(p.r) DESC, p.layer_id, p.unit_a, p.unit_b
            LIMIT ?
            """, [run, limit])
        let byID = Dictionary(uniqueKeysWithValues: layers.map { ($0.layerID, $0) })
        var out: [[SQLiteValue]] = []
        while let r = try rows.nextRow() {
            let l = byID[r[0].int64Value ?? -1]!
            out.append([.integer(run), .text(l.name), .text(l.direction), r[1], r[2], r[3], r[4]])
        }
        return out
    }
}
