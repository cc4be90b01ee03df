import CSQLite
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
/// starts a span at the thresholds in [v_{i-1}, v_i). So one pass per sequence and unit, plus one
/// pass over the thresholds, gives every threshold's answer.
public final class SpanAccumulator {
    /// Thresholds k/100 for k in 0...100.
    public static let grid = 100
    static let thresholds: [Double] = (0...grid).map { Double($0) / Double(grid) }

    final class Layer {
        let units: Int
        let plane: Int?   // memory gate plane, nil: no spans (SimpleRNN)
        let width: Int
        var spans: [Span]  // [unit, k]
        init(units: Int, plane: Int?, width: Int) {
            self.units = units
            self.plane = plane
            self.width = width
            spans = [Span](repeating: Span(), count: plane == nil ? 0 : units * (SpanAccumulator.grid + 1))
        }
    }

    let layers: [Layer]
    // Scratch per sequence, grown as needed.
    private var kmax: [Int] = []
    private var left: [Int] = []
    private var stack: [Int] = []
    private var best = [Span](repeating: Span(), count: grid + 1)
    private var starts = [Int64](repeating: 0, count: grid + 2)

    /// Spans for layers of `units` units whose memory gate is plane `memoryPlane` (nil: none) of `width`.
    public init(units: [Int], memoryPlane: [Int?], width: [Int]) {
        layers = units.indices.map { Layer(units: units[$0], plane: memoryPlane[$0], width: width[$0]) }
    }

    /// Whether layer `li` has a memory gate.
    public func hasSpans(layer li: Int) -> Bool { layers[li].plane != nil }

    /// The largest k with k/100 < v, or -1.
    @inline(__always)
    static func thresholdIndex(below v: Double) -> Int {
        if !(v > 0) { return -1 }
        if v > 1 { return grid }
        var k = Int((v * Double(grid)).rounded(.up)) - 1
        k = Swift.max(-1, Swift.min(grid, k))
        while k >= 0 && !(thresholds[k] < v) { k -= 1 }
        while k < grid && thresholds[k + 1] < v { k += 1 }
        return k
    }

    /// Adds one sequence (`seqID`) of layer `li`: `values` is `[steps, units, width]`, `active[t]`
    /// says whether step t was computed (an inactive step ends a span, as a missing row does).
    public func add(layer li: Int, seqID: Int64, steps: Int, values: UnsafePointer<Float>, active: UnsafePointer<Bool>) {
        let l = layers[li]
        guard let plane = l.plane, steps > 0 else { return }
        let u = l.units, w = l.width
        if kmax.count < steps {
            kmax = [Int](repeating: 0, count: steps)
            left = [Int](repeating: 0, count: steps)
        }
        for unit in 0..<u {
            let p = values + unit * w + plane
            let rowStride = u * w
            var top = -1
            for t in 0..<steps {
                kmax[t] = active[t] ? Self.thresholdIndex(below: Double(p[t * rowStride])) : -1
                top = Swift.max(top, kmax[t])
            }
            guard top >= 0 else { continue }
            for k in 0...top { best[k] = Span() }
            for k in 0...(top + 1) { starts[k] = 0 }
            // Nearest step to the left with a smaller level (or a break), by a monotonic stack;
            // popping step j at t means step t is the first one right of j with a smaller level.
            stack.removeAll(keepingCapacity: true)
            for t in 0...steps {
                let level = t < steps ? kmax[t] : -1
                // Comparing thresholds indices instead of values is enough: a span at threshold k
                // only asks whether each value is above k/100.
                while let j = stack.last, kmax[j] > level {
                    stack.removeLast()
                    let from = left[j] + 1, length = t - from
                    let k = kmax[j]
                    let candidate = Span(longest: Int32(length), seqID: seqID, firstStep: Int32(from), count: 0)
                    best[k].merge(candidate)
                }
                guard t < steps else { break }
                left[t] = stack.last.map { kmax[$0] < level ? $0 : left[$0] } ?? -1
                if level >= 0 {
                    let previous = t > 0 ? kmax[t - 1] : -1
                    if level > previous {
                        starts[previous + 1] += 1
                        starts[level + 1] -= 1
                    }
                }
                stack.append(t)
            }
            // best[k] holds intervals whose minimum level is k; they are spans of every k' <= k.
            let base = unit * (Self.grid + 1)
            var suffix = Span()
            // Prefix sums of the start differences: spans of this sequence at each threshold.
            for k in 1...(top + 1) { starts[k] += starts[k - 1] }
            for k in stride(from: top, through: 0, by: -1) {
                suffix.merge(best[k])
                var s = suffix
                s.count = starts[k]
                l.spans[base + k].merge(s)
            }
        }
    }

    /// The spans of layer `li`, `[unit, k]`, nil when it has no memory gate.
    public func spans(layer li: Int) -> [Span]? { layers[li].plane == nil ? nil : layers[li].spans }
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
