import CSQLite
import CSummaries
import Foundation

/// The longest span of one unit at one threshold: a maximal run of consecutive computed steps of
/// one sequence with the memory gate above the threshold.
public struct Span: Equatable, Sendable {
    /// Steps in the longest span (0 when there is none).
    public var longest: Int32 = 0
    /// Where it is: sequence and first step (the earliest on ties: smallest seq_id, then step).
    public var seqID: Int64 = 0
    public var firstStep: Int32 = 0
    /// How many spans the unit has in all.
    public var count: Int64 = 0

    /// Keeps the better longest span of the two (longer, then earlier) and adds the counts.
    @inline(__always)
    public mutating func merge(_ o: Span) {
        if o.longest > longest || (o.longest == longest && o.longest > 0 && (o.seqID, o.firstStep) < (seqID, firstStep)) {
            longest = o.longest; seqID = o.seqID; firstStep = o.firstStep
        }
        count += o.count
    }
}

/// Per unit of each layer with a memory gate (LSTM f, GRU z), the longest span above each
/// threshold of a 1/100 grid (0.00, 0.01, ..., 1.00), and the number of spans: what
/// `query memory-spans` reads instead of scanning every row, for those thresholds.
///
/// Per sequence and unit, with all values of a run of computed steps at hand, each step i is the
/// minimum of the widest interval around it whose values are all >= v_i; that interval lies above
/// every threshold below v_i, and the longest span above t is the widest such interval with
/// v_i > t (an interval that is not a whole span is shorter than the span containing it). A step
/// starts a span at the thresholds in [v_{i-1}, v_i). So one pass per sequence and unit (the C loop
/// `gs_spans_add` keeps, per level, the best interval of that minimum and the start differences;
/// its faster paths for short sequences keep each threshold's own best, to the same effect),
/// plus one pass over the thresholds when the spans are read, gives every threshold's answer.
public final class SpanAccumulator {
    /// Thresholds k/100 for k in 0...100.
    public static let grid = 100
    static let thresholds: [Double] = (0...grid).map { Double($0) / Double(grid) }

    final class Layer {
        let units: Int
        let plane: Int?   // memory gate plane, nil: no spans (SimpleRNN)
        let width: Int
        let spans: UnsafeMutablePointer<gs_span>  // [unit, k], raw: see gs_spans_add
        /// Scratch of the C loop (3 * steps + 1 ints), grown as needed; per layer, so that layers
        /// can be added at once.
        var scratch: [Int32] = []
        init(units: Int, plane: Int?, width: Int) {
            self.units = units
            self.plane = plane
            self.width = width
            let count = plane == nil ? 0 : units * (SpanAccumulator.grid + 1)
            spans = .allocate(capacity: Swift.max(count, 1))
            spans.initialize(repeating: gs_span(), count: Swift.max(count, 1))
        }
        deinit { spans.deallocate() }
    }

    let layers: [Layer]

    /// Spans for layers of `units` units whose memory gate is plane `memoryPlane` (nil: none) of `width`.
    public init(units: [Int], memoryPlane: [Int?], width: [Int]) {
        precondition(Self.grid == Int(GS_SPAN_GRID), "the C span loop has another grid")
        layers = units.indices.map { Layer(units: units[$0], plane: memoryPlane[$0], width: width[$0]) }
    }

    /// Whether layer `li` has a memory gate.
    public func hasSpans(layer li: Int) -> Bool { layers[li].plane != nil }

    /// Adds one sequence (`seqID`) of layer `li`: `values` is `[steps, units, width]`, `active[t]`
    /// says whether step t was computed (an inactive step ends a span, as a missing row does).
    public func add(layer li: Int, seqID: Int64, steps: Int, values: UnsafePointer<Float>, active: UnsafePointer<Bool>,
                    path: Int32 = gs_summary_path()) {
        add(layer: li, seqIDs: [seqID], steps: steps, values: values, valueStride: 0, active: active, activeStride: 0, path: path)
    }

    /// Adds sequences `seqIDs` of layer `li`, laid out as in `SummaryAccumulator.add(layer:units:...)`;
    /// `path` picks the C loops (2: AVX-512, 0: portable), which give the same spans.
    public func add(layer li: Int, seqIDs: [Int64], steps: Int, values: UnsafePointer<Float>, valueStride: Int,
                    active: UnsafePointer<Bool>, activeStride: Int, path: Int32 = gs_summary_path()) {
        let l = layers[li]
        guard let plane = l.plane, steps > 0 else { return }
        let need = 3 * steps + 1
        if l.scratch.count < need { l.scratch = [Int32](repeating: 0, count: need) }
        l.scratch.withUnsafeMutableBufferPointer { work in
            gs_spans_add(path, l.spans, Int32(l.units), Int32(l.width), Int32(plane), Int32(seqIDs.count),
                         seqIDs, Int32(steps), values, valueStride, active, activeStride, work.baseAddress!)
        }
    }

    /// The spans of layer `li`, `[unit, k]`, nil when it has no memory gate.
    public func spans(layer li: Int) -> [Span]? {
        let l = layers[li]
        guard l.plane != nil else { return nil }
        let count = l.units * (Self.grid + 1)
        var out = [gs_span](repeating: gs_span(), count: count)
        gs_spans_finish(l.spans, Int32(l.units), &out)
        return out.map { Span(longest: $0.longest, seqID: $0.seq_id, firstStep: $0.first_step, count: $0.count) }
    }
}

extension SpanAccumulator {
    /// Writes the `unit_spans` rows of layer `li` (no row where a unit has no span).
    static func write(_ spans: [Span], units: Int, to db: Database, runID: Int64, layerID: Int) throws {
        let insert = try db.prepare("""
            INSERT INTO unit_spans (run_id, layer_id, unit, k, longest, seq_id, first_step, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for unit in 0..<units {
            for k in 0...grid {
                let s = spans[unit * (grid + 1) + k]
                guard s.count > 0 else { continue }
                try insert.bind([runID, layerID, unit, k, Int(s.longest), s.seqID, Int(s.firstStep), s.count] as [SQLiteBindable?])
                try insert.run()
            }
        }
    }

    /// The stored spans of one layer half, `[unit, k]`.
    static func load(from db: Database, runID: Int64, layerID: Int, units: Int) throws -> [Span] {
        var out = [Span](repeating: Span(), count: units * (grid + 1))
        let st = try db.prepare("SELECT unit, k, longest, seq_id, first_step, spans FROM unit_spans WHERE run_id = ? AND layer_id = ?")
        try st.bind([runID, layerID])
        while try st.step() {
            let unit = st.int(at: 0), k = st.int(at: 1)
            guard (0..<units).contains(unit), (0...grid).contains(k) else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) layer \(layerID): unit_spans row for unit \(unit), k \(k) is out of range")
            }
            out[unit * (grid + 1) + k] = Span(longest: Int32(clamping: st.int64(at: 2)), seqID: st.int64(at: 3),
                                              firstStep: Int32(clamping: st.int64(at: 4)), count: st.int64(at: 5))
        }
        return out
    }
}
