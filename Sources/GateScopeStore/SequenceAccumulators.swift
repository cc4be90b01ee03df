import CSQLite
import Foundation
import GateScopeEngine

/// What a run accumulates per whole sequence beside the per-unit summaries: the pair moments of h
/// (`unit_pairs`, for correlations) and the memory spans (`unit_spans`). The recorder adds each
/// sequence of each recorded layer as it is written; a resume adds the stored rows the same way.
public final class SequenceAccumulators {
    public let pairs: PairAccumulator
    public let spans: SpanAccumulator
    let units: [Int]

    /// The tables these write, with their columns after run_id (literals: resume deletes and
    /// merge copies them by these names).
    static let tables: [(name: String, columns: String)] = [
        ("unit_h_moments", "layer_id, unit, n, sum, sum_sq"),
        ("unit_pairs", "layer_id, unit_a, unit_b, r, sum_ab"),
        ("unit_spans", "layer_id, unit, k, longest, seq_id, first_step, spans"),
    ]

    /// Empty accumulators for the recorded layers.
    public init(layers: [RecordedLayer]) {
        units = layers.map(\.units)
        let width = layers.map { $0.cell.planes.count }
        pairs = PairAccumulator(units: units, hPlane: layers.map { $0.cell.planeIndex(of: "h")! }, width: width)
        spans = SpanAccumulator(units: units, memoryPlane: layers.map { $0.cell.memoryGate.flatMap($0.cell.planeIndex(of:)) }, width: width)
    }

    /// Adds one sequence of layer `li`: `values` is `[steps, units, planes]`, `active[t]` whether
    /// step t was computed.
    public func add(layer li: Int, seqID: Int64, steps: Int, values: UnsafePointer<Float>, active: UnsafePointer<Bool>) {
        pairs.add(layer: li, steps: steps, values: values, active: active)
        spans.add(layer: li, seqID: seqID, steps: steps, values: values, active: active)
    }

    /// Writes what each layer keeps and marks `layers.pairs_stored` / `spans_stored`.
    func write(to db: Database, runID: Int64, layerIDs: [Int]) throws {
        let mark = try db.prepare("UPDATE layers SET pairs_stored = ?, spans_stored = ? WHERE run_id = ? AND layer_id = ?")
        for (li, layerID) in layerIDs.enumerated() {
            let moments = pairs.moments(layer: li)
            try moments?.write(to: db, runID: runID, layerID: layerID)
            let layerSpans = spans.spans(layer: li)
            if let layerSpans { try SpanAccumulator.write(layerSpans, units: units[li], to: db, runID: runID, layerID: layerID) }
            try mark.bind([moments == nil ? 0 : 1, layerSpans == nil ? 0 : 1, runID, layerID] as [SQLiteBindable?])
            try mark.run()
        }
    }
}

/// The stored rows of one (sequence, layer) gathered back into the recorder's `[steps, units,
/// planes]` layout, for `SequenceAccumulators` (resume).
final class SequenceBlock {
    /// Steps a stored layer may have in one sequence before its rows count as damaged.
    static let maxSteps = 1 << 24
    /// Values one gathered sequence may hold (256 MB) before its rows count as damaged.
    static let maxValues = 1 << 26
    private(set) var seqID: Int64 = -1
    private(set) var layer = -1
    private var units = 0, width = 0, steps = 0
    private var values: [Float] = []
    private var active: [Bool] = []

    func start(seqID: Int64, layer: Int, units: Int, width: Int) {
        self.seqID = seqID
        self.layer = layer
        self.units = units
        self.width = width
        steps = 0
    }

    /// Stores the planes of one row (steps arrive in ascending order); false when the sequence
    /// would need more than `maxValues` values.
    func set(step: Int, unit: Int, _ row: [Float]) -> Bool {
        if step >= steps {
            let need = (step + 1) * units * width
            guard need <= Self.maxValues else { return false }
            if values.count < need { values += [Float](repeating: 0, count: Swift.max(need - values.count, values.count)) }
            if active.count < step + 1 { active += [Bool](repeating: false, count: Swift.max(step + 1 - active.count, active.count)) }
            for t in steps...step { active[t] = false }
            steps = step + 1
        }
        active[step] = true
        let base = (step * units + unit) * width
        for g in 0..<width { values[base + g] = row[g] }
        return true
    }

    /// Adds the gathered sequence to `acc` (nothing when empty).
    func feed(_ acc: SequenceAccumulators) {
        guard layer >= 0, steps > 0 else { return }
        values.withUnsafeBufferPointer { v in
            active.withUnsafeBufferPointer { a in
                acc.add(layer: layer, seqID: seqID, steps: steps, values: v.baseAddress!, active: a.baseAddress!)
            }
        }
        steps = 0
    }
}
